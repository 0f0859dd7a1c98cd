"""Gradual Balanced Loss (GraLoss), GLAG stage one."""

import math
from typing import Optional, Sequence

import torch
import torch.nn as nn
from mmengine.logging import MessageHub
from mmpretrain.registry import MODELS

from ...core import (
    check_class_counts,
    check_schedule,
    log_prior,
    logit_adjusted_cross_entropy,
    schedule_value,
)
from ...core.logit_adjustment import REDUCTIONS
from ...runtime import get_train_class_counts, training_progress

__all__ = ['GradualBalancedLoss', 'missing_class_counts_error']


def missing_class_counts_error(owner: str) -> ValueError:
    """The error every glag_mm module raises when it has no class counts."""
    return ValueError(
        f'{owner}: no training class counts. Pass class_counts=[...] (one '
        'count per class index), or add '
        "custom_hooks=[dict(type='ClassCountsHook')] to the config so they "
        'are counted from the training dataset (glag_mm tools/train.py adds '
        'it automatically).'
    )


@MODELS.register_module()
class GradualBalancedLoss(nn.Module):
    """Logit-adjusted cross-entropy whose strength tau rises during training.

    GLAG stage one (METHOD.md, stage one, items 1-3; Zhang & Xiang, arXiv
    2203.00452). With progress u in [0, 1] through the stage and the
    training prior pi_c = n_c / N,

        L(z, y) = -log softmax(z + tau(u) * log pi)_y,

    tau(u) = tau_max * u ** p ('convex', the paper's best), tau_max * u
    ('linear'), tau_max * u ** (1/p) ('concave') or tau_max ('constant', the
    fixed logit-adjusted loss of Menon et al.). tau = 0 is plain
    cross-entropy, tau = 1 Balanced Softmax. Soft targets q (N, C) give
    -sum_c q_c log softmax(z + tau * log pi)_c.

    u = iter / (max_iters - 1) comes from the MessageHub runtime info that
    mmengine's ``RuntimeInfoHook`` keeps ('iter', 'max_iters'), so the loss
    needs no hook of its own; outside a training loop u = 0. The tau used by
    the last forward is kept in :attr:`current_tau` and, in training, logged
    as ``train/tau`` (shown as ``tau`` in the training log). In eval mode
    the loss is computed at the current schedule value as well.

    The log prior is a persistent buffer, so checkpoints carry it. With
    ``class_counts=None`` it is filled at the first forward from the counts
    that :class:`glag_mm.engine.ClassCountsHook` publishes for the training
    set (never val / test, METHOD.md stage one item 3), or earlier through
    :meth:`init_class_counts`. Post-hoc adjustment at prediction time
    belongs to the metric, not to this loss.

    Args:
        schedule: 'convex', 'linear', 'concave' or 'constant'.
        tau_max: tau at the end of the stage (>= 0). Defaults to 1.0.
        power: p of the convex / concave shapes (> 0). Defaults to 2.0.
        class_counts: training images per class index; None reads them
            from the running stage's training set.
        loss_weight: multiplies the loss. Defaults to 1.0.
        reduction: 'none', 'mean' or 'sum'. Defaults to 'mean'.
    """

    def __init__(
        self,
        schedule: str = 'convex',
        tau_max: float = 1.0,
        power: float = 2.0,
        class_counts: Optional[Sequence[int]] = None,
        loss_weight: float = 1.0,
        reduction: str = 'mean',
    ) -> None:
        super().__init__()
        check_schedule(schedule, tau_max, power, name='tau_max')
        if reduction not in REDUCTIONS:
            raise ValueError(
                f'reduction must be one of {REDUCTIONS}, got {reduction!r}'
            )
        if not isinstance(loss_weight, (int, float)) or not math.isfinite(
            loss_weight
        ):
            raise ValueError(
                f'loss_weight must be a finite number, got {loss_weight!r}'
            )
        self.schedule = schedule
        self.tau_max = float(tau_max)
        self.power = float(power)
        self.loss_weight = float(loss_weight)
        self.reduction = reduction
        self.current_tau = schedule_value(0.0, schedule, self.tau_max, power)
        prior = (
            torch.zeros(0)
            if class_counts is None
            else log_prior(
                check_class_counts(
                    class_counts, owner=type(self).__name__
                ).tolist()
            )
        )
        self.register_buffer('log_prior', prior, persistent=True)

    @property
    def has_class_counts(self) -> bool:
        """Whether the log prior is known (given, loaded or counted)."""
        return self.log_prior.numel() > 0

    def init_class_counts(self, class_counts: Sequence[int]) -> None:
        """Fill the log prior from training counts unless already known.

        Lets a hook size the buffer before anything copies the model (e.g.
        an EMA model built in ``before_run``); explicit or loaded counts win.
        """
        if not self.has_class_counts:
            counts = check_class_counts(
                class_counts, owner=type(self).__name__
            )
            self.log_prior = log_prior(counts.tolist()).to(self.log_prior)

    def _log_prior_for(self, num_classes: int) -> torch.Tensor:
        owner = type(self).__name__
        if not self.has_class_counts:
            counts = get_train_class_counts()
            if counts is None:
                raise missing_class_counts_error(owner)
            counts = check_class_counts(counts, num_classes, owner=owner)
            self.log_prior = log_prior(counts.tolist()).to(self.log_prior)
        elif self.log_prior.numel() != num_classes:
            raise ValueError(
                f'{owner}: {self.log_prior.numel()} class counts given but '
                f'the head has num_classes={num_classes}; make them agree '
                '(the counts come from the training dataset, one per class '
                'index).'
            )
        return self.log_prior

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # A lazily-sized buffer takes the checkpoint's shape when loading.
        saved = state_dict.get(prefix + 'log_prior')
        if saved is not None and not self.has_class_counts:
            self.log_prior = torch.empty_like(
                saved, device=self.log_prior.device
            )
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(
        self,
        cls_score: torch.Tensor,
        label: torch.Tensor,
        weight: Optional[torch.Tensor] = None,
        avg_factor: Optional[float] = None,
        reduction_override: Optional[str] = None,
        **kwargs,
    ) -> torch.Tensor:
        """Loss of logits ``cls_score`` (N, C) against ``label``.

        Args:
            cls_score: logits z, (N, C).
            label: class indices (N,) or soft targets (N, C).
            weight: optional per-sample weights (N,).
            avg_factor: divide the summed loss by this ('mean').
            reduction_override: 'none', 'mean' or 'sum' for this call.

        Returns:
            torch.Tensor: ``loss_weight`` times the reduced loss.
        """
        if kwargs:
            raise TypeError(
                f'{type(self).__name__}.forward got unexpected arguments '
                f'{sorted(kwargs)}'
            )
        if reduction_override not in (None, *REDUCTIONS):
            raise ValueError(
                f'reduction_override must be None or one of {REDUCTIONS}, '
                f'got {reduction_override!r}'
            )
        reduction = reduction_override or self.reduction
        prior = self._log_prior_for(cls_score.shape[-1])
        tau = schedule_value(
            training_progress(), self.schedule, self.tau_max, self.power
        )
        self.current_tau = tau
        if self.training:
            MessageHub.get_current_instance().update_scalar('train/tau', tau)
        loss = logit_adjusted_cross_entropy(
            cls_score, label, prior, tau, weight, reduction, avg_factor
        )
        return self.loss_weight * loss

    def extra_repr(self) -> str:
        return (
            f'schedule={self.schedule!r}, tau_max={self.tau_max}, '
            f'power={self.power}, loss_weight={self.loss_weight}, '
            f'num_classes={self.log_prior.numel() or None}'
        )
