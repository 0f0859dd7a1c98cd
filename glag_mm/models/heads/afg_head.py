"""Adaptive Feature Generator head: GLAG's stage-two classifier (docs/method.md
stage two items 2 to 8), a drop-in for ``LinearClsHead`` in a cRT config."""

from functools import partial
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.dist import broadcast, get_rank
from mmengine.logging import MessageHub
from mmpretrain.evaluation import Accuracy
from mmpretrain.models.heads import LinearClsHead
from mmpretrain.registry import MODELS
from torch import Tensor

from ...core.calibration import (
    GENERATION_MODES,
    WEIGHTINGS,
    adaptive_confidence,
    generation_plan,
    smoothed_accuracy,
    tail_classes,
)
from ...core.checks import (
    check_choice,
    check_integer,
    check_number,
    check_unit_interval,
)
from ...core.class_statistics import ClassStatistics
from ...core.generator import generate_features, seeded_generators
from ...core.tukey import check_tukey_lambda, tukey_transform
from .distilled_linear_head import TeacherMixin

_number = partial(check_number, owner='AFGHead')
_count = partial(check_integer, at_least=1, owner='AFGHead')
REFERENCES = ('previous', 'stage_one')
STATISTICS_SETTINGS = (  # what the statistics depend on besides features
    'tukey_lambda tukey_eps tail_threshold num_donors donor_weighting '
    'exact_rows factor_rank'
).split()


@MODELS.register_module()
class AFGHead(TeacherMixin, LinearClsHead):
    """Linear head trained on real plus adaptively generated features.

    Both are Tukey-transformed pooled features x~ (so are test features).
    Each training batch adds generated features (:meth:`plan`,
    :meth:`generate`, seeded from (``seed``, iteration, rank)) and the
    teacher's KD term; each validation updates s_c of the tail classes
    (:meth:`update_confidence`). The statistics come from
    :class:`~glag_mm.engine.AFGHook` (:meth:`set_statistics`) and are not
    in the checkpoint; the classifier and the confidence buffers are.

    Args:
        num_classes: C.
        in_channels: D, the pooled feature size.
        tukey_lambda: lam of Tukey's ladder of powers (default 0.5
            [prior]; 1 is the identity, 0 the log), for post-ReLU features
            as the paper assumes; signed ones (LayerNorm-ended trunks) get
            lam = 1 [ours] (docs/architecture.md, "Signed features").
        tukey_eps: eps in log(f + eps) for lam = 0.
        tail_threshold: classes with fewer images are tail classes (default
            100 [ours]; a float in (0, 1): a fraction of n_max).
        num_donors: k, the support set size (default 3 [paper: 2 or 3]).
        donor_weighting: ``'count_distance'`` (default [ours]),
            ``'sqrt_count_distance'`` or ``'uniform'``.
        alpha: dispersion added to the calibrated covariance (default 0.0
            [paper: 0.0 or 0.1]).
        init_confidence: initial s_c (default 0.6 [paper]).
        confidence_step: eta of the update (default 0.05 [ours]).
        confidence_range: (s_min, s_max) (default (0, 1) [ours]).
        confidence_smoothing: beta of the moving average of acc_c that the
            update compares (default 0: the raw acc_c [ours]).
        confidence_reference: acc_c is compared with the last
            validation's (``'previous'``) or the stage-one model's on the
            validation split (``'stage_one'``, set by AFGHook) [ours].
        generation: ``'balance'`` (every class topped up to n_max per epoch,
            instance-balanced batches) or ``'ratio'`` (``generation_ratio``
            generated per real feature, class-aware batches).
        n_max: per-class target of ``'balance'`` (default max n_c).
        max_generated: cap on generated features per batch (None: no cap)
            [ours]: a uniform subset of the plan, importance-weighted to
            the uncapped loss in expectation (docs/method.md).
        exact_rows, factor_rank: classes with at most ``exact_rows``
            images keep their exact covariance, larger ones a
            rank-``factor_rank`` factor plus an isotropic residual (32, 32
            [ours]; :mod:`glag_mm.core.class_statistics`).
        seed: base seed of the generation draws.
        **kwargs: as for ``LinearClsHead`` (``loss``, ``topk``, ...).
    """

    # training-only state, left out of deployment exports (tools/export.py)
    training_state_buffers = tuple(
        'confidence prev_class_acc num_confidence_updates last_update_iter '
        'reference_acc'.split()
    )

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        tukey_lambda: float = 0.5,
        tukey_eps: float = 1e-6,
        tail_threshold=100,
        num_donors: int = 3,
        donor_weighting: str = 'count_distance',
        alpha: float = 0.0,
        init_confidence: float = 0.6,
        confidence_step: float = 0.05,
        confidence_range: Tuple[float, float] = (0.0, 1.0),
        confidence_reference: str = 'previous',
        confidence_smoothing: float = 0.0,
        generation: str = 'balance',
        generation_ratio: float = 1.0,
        n_max: Optional[int] = None,
        max_generated: Optional[int] = None,
        exact_rows: int = 32,
        factor_rank: int = 32,
        seed: int = 0,
        **kwargs,
    ) -> None:
        super().__init__(
            num_classes=num_classes, in_channels=in_channels, **kwargs
        )
        for name, value, choices in (
            ('donor_weighting', donor_weighting, WEIGHTINGS),
            ('confidence_reference', confidence_reference, REFERENCES),
            ('generation', generation, GENERATION_MODES),
        ):
            setattr(self, name, check_choice(name, value, choices, 'AFGHead'))
        for name, value in (
            ('tukey_eps', tukey_eps),
            ('alpha', alpha),
            ('confidence_step', confidence_step),
            ('generation_ratio', generation_ratio),
        ):
            setattr(self, name, _number(name, value, at_least=0))
        for name, value in (
            ('num_donors', num_donors),
            ('exact_rows', exact_rows),
            ('factor_rank', factor_rank),
        ):
            setattr(self, name, _count(name, value))
        tail_classes(torch.ones(1), tail_threshold)  # validates the value
        self.tail_threshold = tail_threshold
        smoothed_accuracy(torch.zeros(1), torch.zeros(1), confidence_smoothing)
        self.confidence_smoothing = confidence_smoothing
        self.tukey_lambda = check_tukey_lambda(tukey_lambda, 'AFGHead')
        low, high = check_unit_interval(
            'confidence_range', confidence_range, owner='AFGHead'
        )
        self.confidence_range = (low, high)
        init = _number(
            'init_confidence', init_confidence, at_least=low, at_most=high
        )
        self.n_max = None if n_max is None else _count('n_max', n_max)
        self.max_generated = max_generated
        if max_generated is not None:
            _count('max_generated', max_generated, at_least=0)
        self.seed = _count('seed', seed, at_least=0)

        self.register_buffer('confidence', torch.full((num_classes,), init))
        self.register_buffer('prev_class_acc', torch.zeros(num_classes))
        self.register_buffer('num_confidence_updates', torch.tensor(0))
        self.register_buffer('last_update_iter', torch.tensor(-1))
        self.register_buffer('signed_features', torch.tensor(False))
        if confidence_reference == 'stage_one':
            nan = torch.full((num_classes,), float('nan'))
            self.register_buffer('reference_acc', nan)
        self.statistics: Optional[ClassStatistics] = None

    # features and statistics ----------------------------------------------
    def transform(self, feats: Tensor, check: bool = False) -> Tensor:
        """Tukey's x~ of raw pooled features (``check`` tests f >= 0);
        the features themselves where they are signed."""
        if self.tukey_lambda == 1.0:
            return feats
        signed = self.signed_features
        if check and not bool(signed):
            tukey_transform(feats, self.tukey_lambda, check=True)
        lam, eps = self.tukey_lambda, self.tukey_eps
        powered = tukey_transform(feats.clamp(min=0), lam, eps, check=False)
        return torch.where(signed, feats, powered)

    def pre_logits(self, feats) -> Tensor:
        """x~ of the last pooled feature, the classifier's input."""
        return self.transform(feats[-1])

    @property
    def class_counts(self):
        """n_c counted by the statistics pass (None before it)."""
        stats = self.statistics
        return None if stats is None else stats.counts.tolist()

    def settings(self) -> dict:
        """What the statistics depend on besides the features."""
        return {k: getattr(self, k) for k in STATISTICS_SETTINGS}

    def set_statistics(self, stats: ClassStatistics) -> None:
        """Use these statistics for generation."""
        shape = (stats.num_classes, stats.dim)
        if shape != (self.num_classes, self.in_channels):
            raise ValueError(
                f'AFGHead: statistics of {stats.num_classes} classes x '
                f'{stats.dim} features do not fit a head of '
                f'{self.num_classes} x {self.in_channels}'
            )
        # x^lam >= 0, so negative means are those of signed features
        self.signed_features.fill_(bool(stats.means.min() < 0))
        self.statistics = stats

    def _require_statistics(self) -> ClassStatistics:
        if self.statistics is None:
            raise RuntimeError(
                'AFGHead has no class statistics: add '
                "custom_hooks=[dict(type='AFGHook')] to the stage-two config "
                '(it builds or loads them before training).'
            )
        return self.statistics

    # generation -----------------------------------------------------------
    def generators(self, device) -> Tuple[torch.Generator, torch.Generator]:
        """Generators seeded from (seed, iteration, rank)."""
        it = int(MessageHub.get_current_instance().get_info('iter', 0) or 0)
        return seeded_generators(self.seed, it, get_rank(), device)

    def plan(self, labels: Tensor, generator=None) -> Tuple[Tensor, int]:
        """Host class ids to generate for a real batch (sorted by class), and
        how many were planned before the ``max_generated`` cap."""
        if self.generation == 'ratio':
            labels = labels.cpu()  # the only read-back, 'ratio' mode only
        else:
            labels = torch.empty(labels.numel(), dtype=torch.long)
        classes = generation_plan(
            self._require_statistics().counts,
            labels,
            n_max=self.n_max,
            mode=self.generation,
            ratio=self.generation_ratio,
            generator=generator,
        )
        total, cap = classes.numel(), self.max_generated
        if cap is not None and total > cap:
            keep = torch.randperm(total, generator=generator)[:cap]
            classes = torch.sort(classes[keep]).values
        return classes, total

    def generate(self, classes: Tensor, generators) -> Tuple[Tensor, Tensor]:
        """(features, labels) drawn by the generator for host class ids."""
        stats = self._require_statistics()
        return generate_features(
            stats, self.confidence, classes, self.alpha, generators
        )

    # training -------------------------------------------------------------
    def loss(self, feats, data_samples, **kwargs) -> dict:
        """CE on real and generated features (as ``ClsHead._get_loss``),
        plus the distiller's terms; generating here, not in ``train_step``,
        keeps it under DDP too."""
        real = self.pre_logits(feats)
        labels = torch.cat([s.gt_label for s in data_samples])
        soft = 'gt_score' in data_samples[0]
        target = labels
        if soft:  # batch augmentation's one-hot scores
            target = torch.stack([s.gt_score for s in data_samples])
        inputs = real
        if self.training:
            gens = self.generators(real.device)
            classes, planned = self.plan(labels, gens[0])
            num, kept = real.shape[0], classes.numel()
            if planned > kept:  # importance weights of the capped plan
                scale = (num + kept) / (num + planned)
                weight = torch.full((num + kept,), scale, device=real.device)
                weight[num:] *= planned / max(kept, 1)
                kwargs = dict(kwargs, weight=weight)
            if kept:
                fake, fake_labels = self.generate(classes, gens)
                inputs = torch.cat([real, fake.to(real)])
                fake_labels = fake_labels.to(target.device)
                if soft:
                    fake_labels = F.one_hot(fake_labels, self.num_classes)
                target = torch.cat([target, fake_labels.to(target)])
        logits = self.fc(inputs)
        loss = self.loss_module(
            logits, target, avg_factor=logits.size(0), **kwargs
        )
        losses = dict(loss=loss)
        if self.cal_acc:
            acc = Accuracy.calculate(logits, target, topk=self.topk)
            losses.update(
                {f'accuracy_top-{k}': a for k, a in zip(self.topk, acc)}
            )
        real_logits = logits[: real.shape[0]]
        return self.add_teacher_terms(losses, feats, real_logits, data_samples)

    # adaptive confidence --------------------------------------------------
    @torch.no_grad()
    def update_confidence(self, class_acc, iteration: int = -1) -> None:
        """s_c <- clip(s_c + eta sign(acc_c - acc_c_ref), s_min, s_max) for
        the tail classes (docs/method.md stage two item 6; with
        ``'previous'`` the first validation only records acc_c [ours]), from
        ``class_acc`` (C,) in [0, 1] (NaN: no sample, no change) measured at
        ``iteration``; rank 0's scores are broadcast."""
        acc = torch.as_tensor(class_acc, dtype=torch.float32)
        if acc.shape != (self.num_classes,):
            raise ValueError(
                f'AFGHead: per-class accuracy has shape {tuple(acc.shape)}, '
                f'expected ({self.num_classes},)'
            )
        first = int(self.num_confidence_updates) == 0
        step, reference = self.confidence_step, self.prev_class_acc
        if self.confidence_reference == 'stage_one':
            reference = self.reference_acc
            if not bool(torch.isfinite(reference).any()):
                raise RuntimeError(
                    "AFGHead: confidence_reference='stage_one' compares with "
                    'the stage-one accuracies, which AFGHook sets; add it.'
                )
        elif first:
            step = 0.0  # nothing to compare the first validation with
        tail = None if self.statistics is None else self.statistics.tail
        acc = acc.to(self.confidence.device)
        record = (
            torch.full_like(acc, torch.nan) if first else self.prev_class_acc
        )
        acc = smoothed_accuracy(record, acc, self.confidence_smoothing)
        conf, _ = adaptive_confidence(
            self.confidence, reference, acc, tail, step, self.confidence_range
        )
        prev = torch.where(torch.isfinite(acc), acc, self.prev_class_acc)
        self.confidence.copy_(conf)
        self.prev_class_acc.copy_(prev)
        self.num_confidence_updates += 1
        self.last_update_iter.fill_(int(iteration))
        for buf in self.buffers(recurse=False):
            broadcast(buf, src=0)
