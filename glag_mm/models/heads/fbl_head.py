"""Linear classifier head trained with the Feature-Balanced Loss (FBL)."""

from typing import Optional, Sequence

import torch
from mmengine.logging import MessageHub
from mmpretrain.models.heads import LinearClsHead
from mmpretrain.registry import MODELS

from ...core import check_number, schedule_value
from ...core.fbl import CURRICULA, authors_curriculum, fbl_class_strength
from ...runtime import resolve_class_counts, training_progress


@MODELS.register_module()
class FBLHead(LinearClsHead):
    """``LinearClsHead`` whose training logits are feature-balanced.

    FBL (Li, Cheung & Jiang, ICME 2022; the formula: :mod:`glag_mm.core.fbl`):
    the loss sees z'_j = z_j - a lambda lambda~_j / (||f|| + eps), f the
    pooled feature; :meth:`predict` gives the raw z.
    ``fbl_lambda`` 60 is the authors' CIFAR value (150 on ImageNet-LT,
    iNaturalist, Places-LT); ``eps`` 1e-6 [ours; theirs 1e-12].

    Curriculum a: ``'authors'`` is (e / (E - 10)) ** 2, e the 0-based epoch,
    unclipped (ends near 1.1); a GraLoss schedule name gives schedule(u)
    over the iteration progress [ours]. Logged as ``train/fbl_a``. The
    counts are a persistent buffer (zeros until known), read from
    ``ClassCountsHook`` at the first :meth:`loss` when not given; with
    ``fbl_lambda=0`` the head is exactly ``LinearClsHead``.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        class_counts: Optional[Sequence[int]] = None,
        fbl_lambda: float = 60.0,
        curriculum: str = 'authors',
        power: float = 2.0,
        eps: float = 1e-6,
        **kwargs,
    ) -> None:
        super().__init__(
            num_classes=num_classes, in_channels=in_channels, **kwargs
        )
        if curriculum not in CURRICULA:
            raise ValueError(
                f'unknown curriculum {curriculum!r}; choose one of {CURRICULA}'
            )
        self.curriculum = curriculum
        self.power = check_number('power', power, above=0, owner='FBLHead')
        self.fbl_lambda = check_number(
            'fbl_lambda', fbl_lambda, at_least=0, owner='FBLHead'
        )
        self.eps = check_number('eps', eps, above=0, owner='FBLHead')
        self.current_curriculum = 0.0
        self.register_buffer('class_counts', torch.zeros(num_classes))
        if class_counts is not None:
            self.init_class_counts(class_counts)

    def init_class_counts(self, class_counts: Optional[Sequence[int]]) -> None:
        """Set the class counts unless they are already known (``None``:
        those :class:`~glag_mm.engine.ClassCountsHook` counted)."""
        if self.class_counts.sum() == 0:  # not given, loaded or counted
            counts = resolve_class_counts(
                class_counts, self.num_classes, owner='FBLHead'
            )
            self.class_counts.copy_(torch.tensor(counts))

    def curriculum_value(self) -> float:
        """a, the curriculum factor at the current point of training."""
        if self.curriculum != 'authors':
            return schedule_value(
                training_progress(), self.curriculum, 1.0, self.power
            )
        hub = MessageHub.get_current_instance()
        max_epochs = hub.get_info('max_epochs')
        if not max_epochs:
            return 0.0
        return authors_curriculum(hub.get_info('epoch', 0), max_epochs)

    def loss(self, feats, data_samples, **kwargs) -> dict:
        """Cross-entropy of z - a lambda lambda~ / (||f|| + eps) (raw z when
        lambda = 0); the training counts are read on first use."""
        features = self.pre_logits(feats)
        cls_score = self.fc(features)
        if self.fbl_lambda != 0:
            self.init_class_counts(None)
            a = self.current_curriculum = self.curriculum_value()
            if self.training:
                hub = MessageHub.get_current_instance()
                hub.update_scalar('train/fbl_a', a)
            scale = a * self.fbl_lambda
            if scale != 0:  # differentiable in z and f
                norm = features.flatten(1).norm(dim=1, keepdim=True)
                norm = norm.to(cls_score.dtype) + self.eps
                strength = fbl_class_strength(self.class_counts)
                cls_score = cls_score - scale * strength.to(cls_score) / norm
        return self._get_loss(cls_score, data_samples, **kwargs)
