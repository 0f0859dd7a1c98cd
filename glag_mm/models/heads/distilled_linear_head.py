"""cRT's linear classifier with a distillation teacher (KD without AFG)."""

from typing import Callable, Optional

import torch
from mmpretrain.models.heads import LinearClsHead
from mmpretrain.registry import MODELS


@MODELS.register_module()
class DistilledLinearClsHead(LinearClsHead):
    """``LinearClsHead`` plus the terms of a teacher (docs/method.md, stage
    two item 8, without the feature generator).

    The teacher arrives through :meth:`set_teacher`, the head API that
    :class:`~glag_mm.engine.GLAGDistillHook` uses for every head it
    distils into (``AFGHead``, ``LWSHead``, this one).
    """

    def __init__(self, num_classes: int, in_channels: int, **kwargs) -> None:
        super().__init__(
            num_classes=num_classes, in_channels=in_channels, **kwargs
        )
        self.distiller: Optional[Callable] = None

    def set_teacher(self, teacher: Optional[Callable]) -> None:
        """``teacher(raw, logits, labels, samples) -> dict`` of losses that
        :meth:`loss` adds (None: none)."""
        self.distiller = teacher

    def loss(self, feats, data_samples, **kwargs) -> dict:
        """Cross-entropy (as ``LinearClsHead``) plus the teacher's terms."""
        losses = super().loss(feats, data_samples, **kwargs)
        if self.distiller is not None:
            labels = torch.cat([s.gt_label for s in data_samples])
            logits = self(feats)
            losses.update(
                self.distiller(feats[-1], logits, labels, data_samples)
            )
        return losses
