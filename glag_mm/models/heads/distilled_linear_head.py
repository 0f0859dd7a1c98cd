"""Heads that take a distillation teacher, and cRT's linear classifier with
one (KD without AFG)."""

import torch
from mmengine.logging import MessageHub
from mmpretrain.models.heads import LinearClsHead
from mmpretrain.registry import MODELS

from ...core.distill import distillation_loss


class TeacherMixin:
    """A head that distils a frozen teacher (``AFGHead``, ``LWSHead``,
    :class:`DistilledLinearClsHead`): :class:`~glag_mm.engine.GLAGDistillHook`
    gives it the teacher (:class:`~glag_mm.engine.LinearTeacher`: frozen
    logits and the term's settings) through :meth:`set_teacher`, and its
    ``loss()`` adds the KD term (docs/method.md stage two item 8) with
    :meth:`add_teacher_terms`."""

    distiller = None

    def set_teacher(self, teacher) -> None:
        """Distil ``teacher`` from now on (None: no KD term)."""
        self.distiller = teacher

    def add_teacher_terms(self, losses, feats, logits, data_samples) -> dict:
        """``losses`` plus ``loss_kd`` = beta(u) T^2 KL(teacher || head) over
        the real samples of head classes, from their raw features
        ``feats[-1]`` and the head's ``logits`` of them."""
        teacher = self.distiller
        if teacher is None:
            return losses
        raw = feats[-1]
        labels = torch.cat([s.gt_label for s in data_samples]).to(raw.device)
        mask = teacher.head_classes.to(raw.device)[labels]
        rows = teacher.rows(data_samples)
        if raw.device.type == 'cpu':
            # the teacher only on the distilled rows: the same mean, and no
            # device read-back where one would cost a sync
            keep = torch.nonzero(mask).flatten()
            raw, logits, mask = raw[keep], logits[keep], mask[keep]
            rows = None if rows is None else rows[keep]
        beta = teacher.beta()
        MessageHub.get_current_instance().update_scalar('train/kd_beta', beta)
        kd = distillation_loss(
            logits.float(),
            teacher.logits(raw, rows),
            teacher.temperature,
            mask,
            teacher.logit_classes,
        )
        losses['loss_kd'] = kd * beta
        return losses


@MODELS.register_module()
class DistilledLinearClsHead(TeacherMixin, LinearClsHead):
    """``LinearClsHead`` plus the terms of a teacher (docs/method.md, stage
    two item 8, without the feature generator)."""

    def loss(self, feats, data_samples, **kwargs) -> dict:
        """Cross-entropy (as ``LinearClsHead``) plus the teacher's terms, on
        one forward of the classifier."""
        logits = self(feats)
        losses = self._get_loss(logits, data_samples, **kwargs)
        return self.add_teacher_terms(losses, feats, logits, data_samples)
