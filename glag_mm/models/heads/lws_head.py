"""Learnable weight scaling (LWS), a decoupled stage-two baseline.

Kang et al., "Decoupling Representation and Classifier for Long-Tailed
Recognition" (ICLR 2020) [prior]: keep the stage-one classifier (W, b) and
learn one scale per class on class-balanced data,

    z_c = s_c * (w_c . f + b_c),      s_c initialised to 1,

with the backbone and (W, b) frozen. GLAG's paper reports it as a baseline
on top of GraLoss (docs/method.md, "Numbers the paper reports", Table 6).
"""

import torch
import torch.nn as nn
from mmpretrain.models.heads import LinearClsHead
from mmpretrain.registry import MODELS

from .distilled_linear_head import TeacherMixin


@MODELS.register_module()
class LWSHead(TeacherMixin, LinearClsHead):
    """Frozen linear classifier with learnable per-class scales.

    A drop-in for ``LinearClsHead`` in a cRT config; only ``scales`` (C,)
    trains. The frozen ``fc`` comes from stage one:
    ``init_cfg=dict(type='StageOne', prefix='head.')`` (mmengine then
    reports ``scales`` missing, as expected). A KD teacher arrives through
    :meth:`set_teacher`.
    """

    def __init__(self, num_classes: int, in_channels: int, **kwargs) -> None:
        super().__init__(
            num_classes=num_classes, in_channels=in_channels, **kwargs
        )
        for param in self.fc.parameters():
            param.requires_grad = False
        self.scales = nn.Parameter(torch.ones(num_classes))

    def forward(self, feats) -> torch.Tensor:
        """z = scales * fc(f) with f the last pooled feature."""
        return self.fc(self.pre_logits(feats)) * self.scales

    def loss(self, feats, data_samples, **kwargs) -> dict:
        """Cross-entropy of the scaled logits, plus the distiller's terms."""
        cls_score = self(feats)
        losses = self._get_loss(cls_score, data_samples, **kwargs)
        return self.add_teacher_terms(losses, feats, cls_score, data_samples)
