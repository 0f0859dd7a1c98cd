"""Gradual Balanced Loss (GraLoss), GLAG stage one."""

from typing import Optional, Sequence

import torch
from mmengine.logging import MessageHub
from mmpretrain.registry import MODELS

from ...core import check_schedule, log_prior, schedule_value
from ...runtime import resolve_class_counts, training_progress
from .base import AdjustedCrossEntropyBase


@MODELS.register_module()
class GradualBalancedLoss(AdjustedCrossEntropyBase):
    """Logit-adjusted cross-entropy whose strength tau rises during training.

    GLAG stage one (docs/method.md, stage one, items 1-3; Zhang & Xiang, arXiv
    2203.00452): L = -log softmax(z + tau(u) log pi)_y (soft targets:
    -sum_c q_c ...), tau(u) = tau_max u ** p ('convex', the paper's best),
    tau_max u ('linear'), tau_max u ** (1/p) ('concave') or tau_max
    ('constant', Menon et al.'s logit-adjusted loss, ICLR 2021); tau 0 is
    cross-entropy, 1 Balanced Softmax (log n and log pi differ by a
    constant). u = iter / (max_iters - 1) from mmengine's MessageHub (0
    outside training); the last tau is :attr:`current_tau`, logged as
    ``train/tau``.

    The log prior is a persistent buffer (NaN until known); with
    ``class_counts=None`` it is filled at the first forward from the
    training counts of :class:`glag_mm.engine.ClassCountsHook` (never val /
    test). Post-hoc adjustment belongs to the metric.
    """

    def __init__(
        self,
        num_classes: int,
        schedule: str = 'convex',
        tau_max: float = 1.0,
        power: float = 2.0,
        class_counts: Optional[Sequence[int]] = None,
        loss_weight: float = 1.0,
        reduction: str = 'mean',
    ) -> None:
        super().__init__(num_classes, loss_weight, reduction)
        check_schedule(schedule, tau_max, power, name='tau_max')
        self.schedule = schedule
        self.tau_max = float(tau_max)
        self.power = float(power)
        self.current_tau = schedule_value(0.0, schedule, self.tau_max, power)
        self.register_buffer(
            'log_prior', torch.full((num_classes,), float('nan'))
        )
        if class_counts is not None:
            self.init_class_counts(class_counts)

    @property
    def has_class_counts(self) -> bool:
        """Whether the log prior is known (given, loaded or counted)."""
        return bool(torch.isfinite(self.log_prior).all())

    def init_class_counts(self, class_counts: Optional[Sequence[int]]) -> None:
        """Fill the log prior from training counts unless already known
        (``None``: those :class:`~glag_mm.engine.ClassCountsHook` counted)."""
        if not self.has_class_counts:
            counts = resolve_class_counts(
                class_counts, self.num_classes, owner=type(self).__name__
            )
            self.log_prior.copy_(log_prior(counts))

    def adjust(self, cls_score, classes):
        """z + tau(u) log pi (docs/method.md stage one, items 1-2)."""
        self.init_class_counts(None)
        tau = schedule_value(
            training_progress(), self.schedule, self.tau_max, self.power
        )
        self.current_tau = tau
        if self.training:
            MessageHub.get_current_instance().update_scalar('train/tau', tau)
        return cls_score + tau * self.log_prior.to(cls_score)
