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


@MODELS.register_module()
class GALALoss(AdjustedCrossEntropyBase):
    """Cross-entropy on gradient-aware adjusted logits.

    METHOD.md, "Sibling losses", GALA (Zhang et al., arXiv 2403.09036); the
    adjustment and ``phi_mode`` are in :mod:`glag_mm.core.gala`.

    theta (buffer ``pos_grad``) and phi (``neg_grad``) are persistent
    float64 buffers starting at zero. In training, after each forward they
    take this forward's increments from p = softmax(z') (detached; the
    gradient with respect to z' is p - onehot(k)), summed over DDP ranks.
    ``momentum=None`` keeps running sums (the paper; each increment added
    once [ours: the released code re-adds its cumulative matrix]); a float
    keeps an EMA [ours]. Soft targets (N, C): the row's class is their
    argmax. ``lambda2`` 1.0 (the authors' CIFAR-100-LT IF100 run: 1.2 /
    0.9); ``eps`` 1e-3 as the authors' code.
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
