"""Gradient-aware logit adjustment (GALA), the functional core.

docs/method.md, "Sibling losses", GALA (Zhang et al., "Gradient-Aware Logit
Adjustment Loss for Long-tailed Classifier", arXiv 2403.09036). With p the
softmax of the adjusted logits of a sample i of class y_i, the gradient of
cross-entropy with respect to z_{i,j} is p_{i,j} - [j = y_i], so

* theta_j, the positive gradient accumulated by classifier j, grows by
  sum_{i: y_i = j} (1 - p_{i,j});
* phi_k, the negative gradient tied to class k, grows by either
  ``'received'``: sum_{i: y_i != k} p_{i,k}  (pushed onto classifier k by
  the other classes' samples; our default [ours]), or
  ``'sent'``: sum_{i: y_i = k} sum_{j != k} p_{i,j}  (what class-k samples
  push onto the other classifiers, the authors' code; equal to theta_k).

For a sample of class k the non-target logits become
z_j + lambda1 * log(theta_j + eps) - lambda2 * log(phi_k + eps), j != k,
and z_k is left alone (the paper's form).
"""

import torch
import torch.nn.functional as F

PHI_MODES = ('received', 'sent')


def gala_adjust_logits(
    logits: torch.Tensor,
    labels: torch.Tensor,
    pos_grad: torch.Tensor,
    neg_grad: torch.Tensor,
    lambda1: float,
    lambda2: float,
    eps: float,
) -> torch.Tensor:
    """z_j + lambda1 log(theta_j + eps) - lambda2 log(phi_k + eps) for
    j != k, z_k unchanged (module docstring)."""
    if lambda1 == 0 and lambda2 == 0:
        return logits
    pos = pos_grad.to(logits.device, torch.float64)
    neg = neg_grad.to(logits.device, torch.float64)
    shift = (
        lambda1 * torch.log(pos + eps)[None, :]
        - lambda2 * torch.log(neg + eps)[labels][:, None]
    )
    non_target = 1.0 - F.one_hot(labels, logits.shape[-1]).to(shift.dtype)
    return logits + (shift * non_target).to(logits.dtype)
