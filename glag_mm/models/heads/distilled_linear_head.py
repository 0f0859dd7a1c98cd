"""Heads that take a distillation teacher, and cRT's linear classifier with
one (KD without AFG)."""

from typing import Callable, Optional

import torch
from mmpretrain.models.heads import LinearClsHead
from mmpretrain.registry import MODELS


class TeacherMixin:
    """The head API of :class:`~glag_mm.engine.GLAGDistillHook`: a teacher
    given to :meth:`set_teacher`, whose terms the head's ``loss()`` adds
    with :meth:`add_teacher_terms` (``AFGHead``, ``LWSHead``,
    :class:`DistilledLinearClsHead`)."""

    distiller: Optional[Callable] = None

    def set_teacher(self, teacher: Optional[Callable]) -> None:
        """``teacher(raw, logits, labels, samples) -> dict`` of losses
        (None: none)."""
        self.distiller = teacher

    def add_teacher_terms(self, losses, feats, logits, data_samples) -> dict:
        """``losses`` plus the teacher's terms on the real samples' raw
        features ``feats[-1]`` and the head's ``logits`` of them."""
        if self.distiller is not None:
            labels = torch.cat([s.gt_label for s in data_samples])
            losses.update(
                self.distiller(feats[-1], logits, labels, data_samples)
            )
        return losses


@MODELS.register_module()
class DistilledLinearClsHead(TeacherMixin, LinearClsHead):
    """``LinearClsHead`` plus the terms of a teacher (docs/method.md, stage
    two item 8, without the feature generator)."""

    def loss(self, feats, data_samples, **kwargs) -> dict:
        """Cross-entropy (as ``LinearClsHead``) plus the teacher's terms."""
        losses = super().loss(feats, data_samples, **kwargs)
        return self.add_teacher_terms(losses, feats, self(feats), data_samples)
