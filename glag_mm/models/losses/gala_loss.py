"""Gradient-Aware Logit Adjustment loss (GALA)."""

from typing import Optional

import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from ...core.checks import check_number
from ...core.gala import (
    PHI_MODES,
    all_reduce_sum,
    gala_adjust_logits,
    gala_increments,
    update_running_statistic,
)
from ...core.logit_adjustment import cross_entropy_per_sample, weight_reduce
from .base import AdjustedCrossEntropyBase

__all__ = ['GALALoss']


@MODELS.register_module()
class GALALoss(AdjustedCrossEntropyBase):
    """Cross-entropy on gradient-aware adjusted logits.

    METHOD.md, "Sibling losses", GALA (Zhang et al., arXiv 2403.09036). For
    a sample of class k the non-target logits are shifted,

        z'_j = z_j + lambda1 * log(theta_j + eps) - lambda2 * log(phi_k + eps)
        (j != k),    z'_k = z_k,

    and the loss is -log softmax(z')_k. theta_j is the positive gradient
    classifier j has accumulated and phi_k the negative gradient tied to
    class k (``phi_mode``: 'received' = sum over samples of other classes of
    p_{i,k}, our default; 'sent' = sum over class-k samples of
    sum_{j != k} p_{i,j}, the authors' code, equal to theta_k). See
    :mod:`glag_mm.core.gala`.

    Statistics. theta (buffer ``pos_grad``) and phi (``neg_grad``) start at
    zero and are persistent buffers (checkpointed, float64). After each
    forward in training mode they are updated from p = softmax(z') of *this*
    forward, i.e. the adjusted logits computed with the statistics before
    the update, detached: the gradient of the loss with respect to z' is
    p - onehot(k), so 1 - p_{i,k} is the positive and p_{i,j} (j != k) the
    negative gradient of the step. ``momentum=None`` keeps running sums
    (the paper; each step's increment is added once [ours: the released
    code re-adds its cumulative matrix]); a float m keeps an exponential
    moving average, stat <- (1 - m) * stat + m * increment [ours]. Under
    DDP the increments of a step are summed over all ranks before the
    update, so every rank holds the statistics of the global batch. In eval
    mode nothing is updated.

    Soft targets (N, C) (mixup / cutmix ``gt_score``) are accepted: the
    class k of a row, which decides the target logit left alone and the
    statistics, is the argmax of the soft target, and the loss is
    -sum_c q_c log softmax(z')_c.

    Args:
        num_classes: C; must match the logits.
        lambda1: weight of log(theta_j + eps). Defaults to 1.0.
        lambda2: weight of log(phi_k + eps). Defaults to 1.0 (the authors'
            CIFAR-100-LT IF100 run used 1.2 / 0.9).
        phi_mode: 'received' (default) or 'sent'.
        momentum: None for running sums, or the EMA weight in (0, 1].
        eps: added inside the logarithms. Defaults to 1e-3 (the authors'
            code).
        loss_weight: multiplies the loss. Defaults to 1.0.
        reduction: 'none', 'mean' or 'sum'. Defaults to 'mean'.
    """

    def __init__(
        self,
        num_classes: int,
        lambda1: float = 1.0,
        lambda2: float = 1.0,
        phi_mode: str = 'received',
        momentum: Optional[float] = None,
        eps: float = 1e-3,
        loss_weight: float = 1.0,
        reduction: str = 'mean',
    ) -> None:
        super().__init__(num_classes, loss_weight, reduction)
        check_number('lambda1', lambda1, owner='GALALoss')
        check_number('lambda2', lambda2, owner='GALALoss')
        if phi_mode not in PHI_MODES:
            raise ValueError(
                f'phi_mode must be one of {PHI_MODES}, got {phi_mode!r}'
            )
        if momentum is not None:  # None: running sums
            check_number('momentum', momentum, above=0, at_most=1)
        check_number('eps', eps, above=0, owner='GALALoss')
        self.lambda1 = float(lambda1)
        self.lambda2 = float(lambda2)
        self.phi_mode = phi_mode
        self.momentum = None if momentum is None else float(momentum)
        self.eps = float(eps)
        zeros = torch.zeros(num_classes, dtype=torch.float64)
        self.register_buffer('pos_grad', zeros.clone(), persistent=True)
        self.register_buffer('neg_grad', zeros.clone(), persistent=True)

    def _class_of_each_row(self, label: torch.Tensor, n: int) -> torch.Tensor:
        if label.ndim == 2 and label.shape == (n, self.num_classes):
            return label.argmax(dim=-1)
        if label.ndim == 1 and label.shape[0] == n:
            if label.dtype.is_floating_point:
                raise TypeError(
                    'GALALoss: hard labels must be integer class indices, '
                    f'got dtype {label.dtype}'
                )
            return label.long()
        raise ValueError(
            f'GALALoss: label of shape {tuple(label.shape)} does not fit '
            f'logits ({n}, {self.num_classes}): give class indices (N,) or '
            'soft targets (N, C)'
        )

    @torch.no_grad()
    def _update_statistics(
        self, adjusted: torch.Tensor, classes: torch.Tensor
    ) -> None:
        probs = F.softmax(adjusted.detach().double(), dim=-1)
        d_pos, d_neg = gala_increments(probs, classes, self.phi_mode)
        increments = all_reduce_sum(torch.cat([d_pos, d_neg]))
        c = self.num_classes
        update_running_statistic(self.pos_grad, increments[:c], self.momentum)
        update_running_statistic(self.neg_grad, increments[c:], self.momentum)

    def adjusted_loss(self, cls_score, label, weight, reduction, avg_factor):
        """The loss on z' (the statistics count every sample once, whatever
        its ``weight``); updates them in training mode."""
        classes = self._class_of_each_row(label, cls_score.shape[0])
        adjusted = gala_adjust_logits(
            cls_score,
            classes,
            self.pos_grad,
            self.neg_grad,
            self.lambda1,
            self.lambda2,
            self.eps,
        )
        loss = cross_entropy_per_sample(adjusted, label)
        if self.training:
            self._update_statistics(adjusted, classes)
        return weight_reduce(loss, weight, reduction, avg_factor)

    def extra_repr(self) -> str:
        return (
            f'num_classes={self.num_classes}, lambda1={self.lambda1}, '
            f'lambda2={self.lambda2}, phi_mode={self.phi_mode!r}, '
            f'momentum={self.momentum}, eps={self.eps}'
        )
