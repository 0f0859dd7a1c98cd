"""What the logit-adjusting losses share: mmpretrain's loss interface."""

from typing import Optional

import torch
import torch.nn as nn
from mmpretrain.models.losses.cross_entropy_loss import (
    cross_entropy,
    soft_cross_entropy,
)

from ...core.checks import check_choice, check_integer, check_number

REDUCTIONS = ('none', 'mean', 'sum')


class AdjustedCrossEntropyBase(nn.Module):
    """Cross-entropy on adjusted logits z', called as mmpretrain calls a loss.

    :meth:`forward` checks mmpretrain's ``CrossEntropyLoss`` arguments once
    and reduces as it does (sample ``weight``, ``avg_factor``); a subclass
    maps z to z' in :meth:`adjust`.
    """

    def __init__(
        self, num_classes: int, loss_weight: float = 1.0, reduction='mean'
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.num_classes = check_integer(
            "num_classes (the head's)", num_classes, at_least=1, owner=owner
        )
        check_choice('reduction', reduction, REDUCTIONS, owner)
        self.loss_weight = check_number(
            'loss_weight', loss_weight, owner=owner
        )
        self.reduction = reduction

    def adjust(
        self, cls_score: torch.Tensor, classes: torch.Tensor
    ) -> torch.Tensor:
        """z' from logits (N, C) and each row's class (N,)."""
        raise NotImplementedError

    def forward(
        self,
        cls_score: torch.Tensor,
        label: torch.Tensor,
        weight: Optional[torch.Tensor] = None,
        avg_factor: Optional[float] = None,
        reduction_override: Optional[str] = None,
    ) -> torch.Tensor:
        """``loss_weight`` times the loss of logits (N, C) against class
        indices (N,) or soft targets (N, C), whose argmax is the row's
        class."""
        owner = type(self).__name__
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
        soft = label.shape == cls_score.shape
        if not soft and (
            label.shape != cls_score.shape[:1] or label.is_floating_point()
        ):
            raise ValueError(
                f'{owner}: {label.dtype} label of shape {tuple(label.shape)} '
                f'does not fit logits {tuple(cls_score.shape)}: give integer '
                'class indices (N,) or soft targets (N, C)'
            )
        classes = label.argmax(dim=-1) if soft else label.long()
        loss = (soft_cross_entropy if soft else cross_entropy)(
            self.adjust(cls_score, classes),
            label if soft else classes,
            weight,
            reduction=reduction_override or self.reduction,
            avg_factor=avg_factor,
        )
        return self.loss_weight * loss
