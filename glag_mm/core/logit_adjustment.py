"""Logit adjustment, the functional core of GraLoss.

METHOD.md, stage one, item 1 [prior: Menon et al., "Long-tail learning via
logit adjustment", ICLR 2021, the logit-adjusted loss]:

    L(z, y) = -log softmax(z + tau * log pi)_y

with pi_c = n_c / N the training prior. tau = 0 is plain cross-entropy and
tau = 1 is Balanced Softmax (z + log n gives the same softmax, since log n
and log pi differ by a constant). The loss is mmpretrain's (soft)
cross-entropy on the adjusted logits (``GradualBalancedLoss``).
"""

import torch


def adjust_logits(
    logits: torch.Tensor, log_prior: torch.Tensor, tau: float
) -> torch.Tensor:
    """z + tau * log pi, broadcast over the batch (a no-op at tau = 0)."""
    if tau == 0:
        return logits
    return logits + tau * log_prior.to(logits)
