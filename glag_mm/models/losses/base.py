"""What the logit-adjusting losses share: mmpretrain's loss interface."""

from typing import Optional

import torch
import torch.nn as nn

from ...core.checks import check_integer, check_number
from ...core.logit_adjustment import REDUCTIONS


class AdjustedCrossEntropyBase(nn.Module):
    """Cross-entropy on adjusted logits, called as mmpretrain calls a loss.

    :meth:`forward` checks mmpretrain's ``CrossEntropyLoss`` arguments once;
    a subclass computes the reduced loss in :meth:`adjusted_loss`.
    """

    def __init__(
        self, num_classes: int, loss_weight: float = 1.0, reduction='mean'
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.num_classes = check_integer(
            "num_classes (the head's)", num_classes, at_least=1, owner=owner
        )
        if reduction not in REDUCTIONS:
            raise ValueError(
                f'{owner}: reduction must be one of {REDUCTIONS}, got '
                f'{reduction!r}'
            )
        self.loss_weight = check_number(
            'loss_weight', loss_weight, owner=owner
        )
        self.reduction = reduction

    def adjusted_loss(
        self,
        cls_score: torch.Tensor,
        label: torch.Tensor,
        weight: Optional[torch.Tensor],
        reduction: str,
        avg_factor: Optional[float],
    ) -> torch.Tensor:
        """The reduced loss, before ``loss_weight``."""
        raise NotImplementedError

    def forward(
        self,
        cls_score: torch.Tensor,
        label: torch.Tensor,
        weight: Optional[torch.Tensor] = None,
        avg_factor: Optional[float] = None,
        reduction_override: Optional[str] = None,
        **kwargs,
    ) -> torch.Tensor:
        """``loss_weight`` times the loss of logits (N, C) against class
        indices (N,) or soft targets (N, C)."""
        owner = type(self).__name__
        if kwargs:
            raise TypeError(
                f'{owner}.forward got unexpected arguments {sorted(kwargs)}'
            )
        if reduction_override not in (None, *REDUCTIONS):
            raise ValueError(
                f'reduction_override must be None or one of {REDUCTIONS}, '
                f'got {reduction_override!r}'
            )
        if cls_score.ndim != 2 or cls_score.shape[-1] != self.num_classes:
            raise ValueError(
                f'{owner}: logits of shape {tuple(cls_score.shape)} but '
                f"num_classes={self.num_classes}; set the loss's "
                "num_classes to the head's"
            )
        reduction = reduction_override or self.reduction
        loss = self.adjusted_loss(
            cls_score, label, weight, reduction, avg_factor
        )
        return self.loss_weight * loss
