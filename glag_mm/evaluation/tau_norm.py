"""tau-normalisation of a linear classifier, its tau chosen on validation.

[prior: Kang et al. 2020, "Decoupling Representation and Classifier for
Long-Tailed Recognition", ICLR, sec. 4 (tau-normalised classifier)]: the
weights w_c of class c are rescaled to w_c / ||w_c||^tau, tau in [0, 1]
typically, chosen on held-out data; tau = 1 is the cosine-like classifier
with unit-norm weights, tau = 0 the classifier itself. With the head's
logits z_ic = w_c . f_i + b_c, the rescaled logits are

    z~_ic = (z_ic - b_c) / ||w_c||^tau + b_c,

the bias, where the head has one, kept as it is (Kang et al. rescale the
weights only), so tau = 0 gives the head's own predictions. No training:
the logits, the weight norms and the bias are all it needs
(:class:`glag_mm.models.heads.TauNormHead` provides them). The choice of
tau on validation and its use on test are :mod:`.posthoc_tau`'s.
"""

from typing import Sequence

import torch

# 0.0, 0.1, ..., 2.0, as post-hoc tau's grid (Kang et al. tune tau in [0, 1]).
DEFAULT_TAU_NORM_GRID = tuple(round(0.1 * i, 1) for i in range(21))


def tau_norm_logits(
    logits: torch.Tensor,
    bias: torch.Tensor,
    norms: torch.Tensor,
    tau: float,
) -> torch.Tensor:
    """(z - b) / ||w||^tau + b for logits z (..., C), bias and norms (C,)."""
    bias, norms = bias.to(logits), norms.to(logits)
    if norms.le(0).any():
        raise ValueError(
            'tau-normalisation needs classifier weights of positive norm; '
            f'class(es) {norms.le(0).nonzero().flatten().tolist()} have a '
            'zero weight vector.'
        )
    return (logits - bias) / norms.pow(tau) + bias


def tau_norm_labels_over_grid(
    logits: torch.Tensor,
    bias: torch.Tensor,
    norms: torch.Tensor,
    taus: Sequence[float],
) -> torch.Tensor:
    """argmax_c of :func:`tau_norm_logits` for every tau: logits (C,) or
    (N, C) -> labels (G,) or (G, N)."""
    logits = logits.double()
    return torch.stack(
        [
            tau_norm_logits(logits, bias, norms, tau).argmax(dim=-1)
            for tau in taus
        ]
    )
