"""Adaptive Feature Generator head: GLAG's stage-two classifier.

METHOD.md, stage two items 2 to 8. A drop-in for ``LinearClsHead`` in a cRT
config. On a frozen trunk it

* maps every pooled feature f to Tukey's x~ = f ** lam (lam = 0.5 [prior];
  ``log(f + eps)`` for lam = 0) at train *and* test time (``pre_logits``),
  so the classifier always sees the space the statistics live in [ours];
* holds the class statistics of x~ over the training set (a
  :class:`~glag_mm.core.ClassFeatureBank`: means and centred rows, never a
  D x D matrix), filled by one streaming pass of
  :class:`~glag_mm.engine.AFGHook` before training;
* in every training batch, generates features on the fly (never an epoch's
  synthetic set): tail classes (n_c below ``tail_threshold``) from the
  calibrated distribution N(mu', sum_i w_i Sigma_i + alpha I) around an
  anchor x~ of the class, mu' = (1 - s_c) x~ + s_c sum_i w_i mu_i over the k
  nearest larger classes (donors), other classes from their own
  N(mu_c, Sigma_c); and trains the linear classifier with cross-entropy on
  real and generated features together (METHOD.md item 8, the CE part);
* keeps one adaptive confidence s_c per class (used for tail classes),
  updated after each validation by :meth:`update_confidence`:
  s_c <- clip(s_c + eta * sign(acc_c - acc_c_prev), s_min, s_max).

How many features are generated (``generation``):

* ``'balance'`` (default; GLAG's own stage two with instance-balanced real
  batches [ours]): a batch of B real features carries about
  B (n_max C / N - 1) generated ones, class c getting B (n_max - n_c) / N in
  expectation, so that over an epoch every class reaches n_max;
* ``'ratio'`` (a cRT config that keeps its class-aware sampler, whose real
  batches are already uniform): ``generation_ratio`` generated features per
  real sample, of that sample's class.

Statistics, confidence scores and the previous validation accuracies are
model state: they are saved in checkpoints, identical on every rank (the
pass is gathered across ranks, the updates are broadcast from rank 0) and
restored on resume. Random draws use a generator seeded from (``seed``,
iteration, rank), so a resumed run draws what the uninterrupted run drew.
Which features to generate (classes, anchor rows, donor lists) is decided
on the host from small tables kept there, so a training step never reads a
device tensor back (except the batch labels in ``'ratio'`` mode); the
features themselves are drawn on the features' device.
"""

from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.dist import broadcast, get_rank
from mmengine.logging import MessageHub
from mmpretrain.evaluation.metrics import Accuracy
from mmpretrain.models.heads import LinearClsHead
from mmpretrain.registry import MODELS
from torch import Tensor

from ...core.calibration import (
    GENERATION_MODES,
    WEIGHTINGS,
    anchor_support,
    calibrated_mean,
    generation_plan,
    tail_classes,
)
from ...core.feature_bank import ClassFeatureBank
from ...core.tukey import check_tukey_lambda, tukey_transform

__all__ = ['AFGHead']

_BANK_PREFIX = 'bank.'
_DTYPES = {
    'float16': torch.float16,
    'bfloat16': torch.bfloat16,
    'float32': torch.float32,
}


def _number(value, name: str, low: Optional[float] = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f'AFGHead: {name} must be a number, got {value!r}')
    if low is not None and value < low:
        raise ValueError(f'AFGHead: {name} must be >= {low}, got {value!r}')
    return float(value)


@MODELS.register_module()
class AFGHead(LinearClsHead):
    """Linear head trained on real plus adaptively generated features.

    Args:
        num_classes: C.
        in_channels: D, the pooled feature size.
        tukey_lambda: lam of Tukey's ladder of powers (default 0.5
            [prior]; 1 is the identity, 0 the log).
        tukey_eps: eps in log(f + eps) for lam = 0.
        tail_threshold: classes with fewer training images than this are
            tail classes, calibrated from donors (default 100, the
            many-shot threshold [ours]); a float in (0, 1) is a fraction of
            n_max.
        num_donors: k, the support set size (default 3 [paper: 2 or 3]).
        donor_weighting: ``'count_distance'`` (w_i proportional to
            n_i / ||x~ - mu_i||, default [ours]) or ``'uniform'`` (1 / k).
        alpha: dispersion added to the calibrated covariance (default 0.0
            [paper: 0.0 or 0.1]).
        init_confidence: initial s_c (default 0.6 [paper]).
        confidence_step: eta of the update (default 0.05 [ours]).
        confidence_range: (s_min, s_max) (default (0, 1) [ours]).
        generation: ``'balance'`` or ``'ratio'`` (module docstring).
        generation_ratio: generated features per real one in ``'ratio'``.
        n_max: per-class target of ``'balance'`` (default max n_c).
        max_generated: cap on generated features per batch (None: no cap)
            [ours].
        bank_dtype: storage of the centred rows (``'float16'`` default).
        bank_rank: None keeps every row (exact); r keeps a rank-r factor
            per class with more than r + 1 images (must be >= the tail
            threshold, anchors need real rows).
        seed: base seed of the generation draws.
        **kwargs: ``loss``, ``topk``, ``cal_acc``, ``init_cfg`` as for
            ``LinearClsHead`` (a cRT head is re-initialised).

    Attributes:
        confidence: (C,) buffer, s_c.
        prev_class_acc: (C,) buffer, the last validation's per-class
            accuracy in [0, 1].
        num_confidence_updates: validations seen.
        last_update_iter: training iteration of the last validation seen
            (-1 before any), so a resumed run can tell whether the
            validation that followed its checkpoint was applied.
        bank: the class statistics, or None before the statistics pass.
        distiller: optional callable ``(raw, logits, labels) -> dict`` of
            extra losses (set by :class:`~glag_mm.engine.GLAGDistillHook`).
    """

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
        generation: str = 'balance',
        generation_ratio: float = 1.0,
        n_max: Optional[int] = None,
        max_generated: Optional[int] = None,
        bank_dtype: str = 'float16',
        bank_rank: Optional[int] = None,
        seed: int = 0,
        **kwargs,
    ) -> None:
        super().__init__(
            num_classes=num_classes, in_channels=in_channels, **kwargs
        )
        self.tukey_lambda = check_tukey_lambda(tukey_lambda)
        self.tukey_eps = _number(tukey_eps, 'tukey_eps', 0.0)
        tail_classes(torch.ones(1), tail_threshold)  # validates the value
        self.tail_threshold = tail_threshold
        if isinstance(num_donors, bool) or not isinstance(num_donors, int):
            raise TypeError(
                f'AFGHead: num_donors must be an int, got {num_donors!r}'
            )
        if num_donors < 1:
            raise ValueError(
                f'AFGHead: num_donors must be >= 1, got {num_donors}'
            )
        self.num_donors = num_donors
        if donor_weighting not in WEIGHTINGS:
            raise ValueError(
                f'AFGHead: donor_weighting must be one of {WEIGHTINGS}, got '
                f'{donor_weighting!r}'
            )
        self.donor_weighting = donor_weighting
        self.alpha = _number(alpha, 'alpha', 0.0)
        low, high = (_number(v, 'confidence_range') for v in confidence_range)
        init = _number(init_confidence, 'init_confidence')
        if not low <= init <= high:
            raise ValueError(
                'AFGHead: need s_min <= init_confidence <= s_max, got '
                f'{init} and confidence_range={confidence_range}'
            )
        self.confidence_range = (low, high)
        self.confidence_step = _number(confidence_step, 'confidence_step', 0)
        if generation not in GENERATION_MODES:
            raise ValueError(
                f'AFGHead: generation must be one of {GENERATION_MODES} '
                "('balance' with instance-balanced real batches, 'ratio' "
                f'with a class-aware sampler), got {generation!r}'
            )
        self.generation = generation
        self.generation_ratio = _number(
            generation_ratio, 'generation_ratio', 0
        )
        if n_max is not None and (
            isinstance(n_max, bool) or not isinstance(n_max, int) or n_max < 1
        ):
            raise ValueError(
                f'AFGHead: n_max must be None or >= 1, got {n_max!r}'
            )
        self.n_max = n_max
        if max_generated is not None and (
            not isinstance(max_generated, int) or max_generated < 0
        ):
            raise ValueError(
                'AFGHead: max_generated must be None or an int >= 0, got '
                f'{max_generated!r}'
            )
        self.max_generated = max_generated
        if bank_dtype not in _DTYPES:
            raise ValueError(
                f'AFGHead: bank_dtype must be one of {tuple(_DTYPES)}, got '
                f'{bank_dtype!r}'
            )
        self.bank_dtype = bank_dtype
        self.bank_rank = bank_rank
        self.seed = int(seed)

        self.register_buffer('confidence', torch.full((num_classes,), init))
        self.register_buffer('prev_class_acc', torch.zeros(num_classes))
        self.register_buffer('num_confidence_updates', torch.tensor(0))
        self.register_buffer('last_update_iter', torch.tensor(-1))
        self.bank: Optional[ClassFeatureBank] = None
        self.distiller = None
        self._tables: Optional[Dict[str, Tensor]] = None

    # ------------------------------------------------------------------
    # features
    # ------------------------------------------------------------------
    def transform(self, feats: Tensor, check: bool = False) -> Tensor:
        """Tukey's x~ of raw pooled features (``check`` tests f >= 0)."""
        return tukey_transform(
            feats, self.tukey_lambda, self.tukey_eps, check=check
        )

    def pre_logits(self, feats) -> Tensor:
        """x~ of the last pooled feature, the classifier's input."""
        return self.transform(feats[-1])

    # ------------------------------------------------------------------
    # statistics
    # ------------------------------------------------------------------
    @property
    def statistics_ready(self) -> bool:
        return self.bank is not None and self.bank.finalized

    @property
    def class_counts(self) -> Optional[List[int]]:
        """n_c counted by the statistics pass (None before it)."""
        return self.bank.counts.tolist() if self.statistics_ready else None

    def reset_statistics(self) -> None:
        """Start a new statistics pass on the classifier's device."""
        self.bank = ClassFeatureBank(
            self.num_classes,
            self.in_channels,
            dtype=_DTYPES[self.bank_dtype],
            rank=self.bank_rank,
            device=self.fc.weight.device,
        )
        self._tables = None

    def add_statistics(
        self, feats: Tensor, labels: Tensor, indices: Optional[Tensor] = None
    ) -> None:
        """Add raw pooled features (B, D) of training samples to the pass."""
        if self.bank is None or self.bank.finalized:
            self.reset_statistics()
        self.bank.add(self.transform(feats, check=True), labels, indices)

    def finalize_statistics(self, all_gather=None) -> None:
        """Gather the pass across ranks and prepare generation."""
        self.bank.finalize(all_gather)
        self._tables = None
        self._prepare()

    def _prepare(self) -> Dict[str, Tensor]:
        """Host tables and per-row support sets, once per bank."""
        if self._tables is not None:
            return self._tables
        if not self.statistics_ready:
            raise RuntimeError(
                'AFGHead has no class statistics: add '
                "custom_hooks=[dict(type='AFGHook')] to the stage-two config "
                '(it runs the statistics pass before training), or resume '
                'from a checkpoint that holds them.'
            )
        bank = self.bank
        counts = bank.counts.cpu()
        tail = tail_classes(counts, self.tail_threshold)
        lonely = torch.nonzero(~tail & (counts < 2)).flatten()
        if lonely.numel():
            c = int(lonely[0])
            raise ValueError(
                f'AFGHead: class {c} has {int(counts[c])} training image(s) '
                'but is not a tail class, so it would be sampled from its '
                'own covariance, which needs 2 images; raise tail_threshold '
                f'above {int(counts[c])}.'
            )
        donors, weights = anchor_support(
            bank, tail.to(bank.device), self.num_donors, self.donor_weighting
        )
        self._tables = dict(
            counts=counts,
            offsets=bank.offsets.cpu(),
            tail=tail,
            tail_device=tail.to(bank.device),
            donors=donors,
            weights=weights,
            donors_host=donors.cpu(),
            weights_host=weights.cpu(),
        )
        return self._tables

    # ------------------------------------------------------------------
    # generation
    # ------------------------------------------------------------------
    def _generators(self, device) -> Tuple[torch.Generator, torch.Generator]:
        """Host and device generators seeded from (seed, iteration, rank)."""
        it = int(MessageHub.get_current_instance().get_info('iter', 0) or 0)
        mixed = ((self.seed * 1_000_003 + it) * 1_009 + get_rank()) % (2**62)
        host = torch.Generator().manual_seed(mixed)
        dev = torch.Generator(device=device).manual_seed(mixed + 1)
        return host, dev

    def _anchor_rows(self, classes: Tensor, generator) -> Tensor:
        """Host row ids of anchors, spread evenly over each class's rows.

        The t-th of g_c requests for class c takes row
        floor((t + u_c) n_c / g_c), u_c ~ U[0, 1) (stratified).
        """
        tab = self._tables
        per_class = torch.bincount(classes, minlength=self.num_classes)
        first = torch.cumsum(per_class, 0) - per_class
        t = torch.arange(classes.numel()) - first[classes]
        u = torch.rand(self.num_classes, generator=generator)
        n = tab['counts'][classes]
        pos = ((t + u[classes]) * n / per_class[classes]).floor().long()
        return tab['offsets'][classes] + torch.minimum(pos, n - 1)

    def plan(self, labels: Tensor, generator=None) -> Tensor:
        """Host class ids to generate for a real batch (sorted by class)."""
        tab = self._prepare()
        if self.generation == 'ratio':
            labels = labels.cpu()  # the only read-back, 'ratio' mode only
        else:
            labels = torch.empty(labels.numel(), dtype=torch.long)
        classes = generation_plan(
            tab['counts'],
            labels,
            n_max=self.n_max,
            mode=self.generation,
            ratio=self.generation_ratio,
            generator=generator,
        )
        if self.max_generated is not None and (
            classes.numel() > self.max_generated
        ):
            keep = torch.randperm(classes.numel(), generator=generator)
            classes = torch.sort(classes[keep[: self.max_generated]]).values
        return classes

    def generate(
        self, classes: Tensor, generator_host=None, generator_device=None
    ) -> Tensor:
        """Draw one feature (in Tukey space) per requested host class id.

        Returns:
            Tensor: (M, D) float32 on the bank's device, rows in the order
            of ``classes``.
        """
        tab = self._prepare()
        bank = self.bank
        dev = bank.device
        out = torch.empty(classes.numel(), self.in_channels, device=dev)
        is_tail = tab['tail'][classes]
        pos_tail = torch.nonzero(is_tail).flatten()
        pos_own = torch.nonzero(~is_tail).flatten()
        if pos_tail.numel():
            cls_host = classes[pos_tail]
            rows_host = self._anchor_rows(cls_host, generator_host)
            rows = rows_host.to(dev)
            cls = cls_host.to(dev)
            centres = calibrated_mean(
                bank.features(rows),
                tab['donors'][rows],
                tab['weights'][rows],
                bank.means,
                self.confidence[cls],
            )
            out[pos_tail.to(dev)] = bank.sample_mixture(
                centres,
                tab['donors_host'][rows_host],
                tab['weights_host'][rows_host],
                self.alpha,
                generator_device,
            )
        if pos_own.numel():
            out[pos_own.to(dev)] = bank.sample_class(
                classes[pos_own], generator_device
            )
        return out

    # ------------------------------------------------------------------
    # training
    # ------------------------------------------------------------------
    def loss(self, feats, data_samples, **kwargs) -> dict:
        """CE on real and generated features, plus the distiller's terms.

        Generation happens here (not in a ``train_step``) so that it also
        runs under DDP, where the wrapper's ``train_step`` is used.
        """
        real = self.pre_logits(feats)
        num_real = real.shape[0]
        labels = torch.cat([s.gt_label for s in data_samples])
        soft = 'gt_score' in data_samples[0]
        if soft:
            target = torch.stack([s.gt_score for s in data_samples])
        else:
            target = labels
        inputs = real
        if self.training:
            host_gen, dev_gen = self._generators(real.device)
            classes = self.plan(labels, host_gen)
            if classes.numel():
                fake = self.generate(classes, host_gen, dev_gen)
                fake_labels = classes.to(real.device)
                inputs = torch.cat([real, fake.to(real.dtype)])
                if soft:
                    fake_target = F.one_hot(fake_labels, self.num_classes)
                    target = torch.cat([target, fake_target.to(target)])
                else:
                    target = torch.cat([target, fake_labels])
        logits = self.fc(inputs)
        losses = dict(
            loss=self.loss_module(
                logits, target, avg_factor=logits.size(0), **kwargs
            )
        )
        real_logits = logits[:num_real]
        if self.cal_acc and not soft:
            acc = Accuracy.calculate(real_logits, labels, topk=self.topk)
            losses.update(
                {f'accuracy_top-{k}': a for k, a in zip(self.topk, acc)}
            )
        if self.distiller is not None:
            losses.update(self.distiller(feats[-1], real_logits, labels))
        return losses

    # ------------------------------------------------------------------
    # adaptive confidence
    # ------------------------------------------------------------------
    @torch.no_grad()
    def update_confidence(self, class_acc, iteration: int = -1) -> None:
        """s_c <- clip(s_c + eta sign(acc_c - acc_c_prev), s_min, s_max).

        Applied to tail classes only (METHOD.md stage two item 6). The
        first validation only records the accuracies (there is no previous
        one to compare with) [ours]. The result is broadcast from rank 0 so
        that every rank holds the same scores.

        Args:
            class_acc: (C,) per-class accuracy on the validation split, as
                fractions in [0, 1]; NaN (a class without validation
                samples) leaves that class's score and record unchanged.
            iteration: training iterations done when it was measured.
        """
        acc = torch.as_tensor(class_acc, dtype=torch.float32)
        if acc.shape != (self.num_classes,):
            raise ValueError(
                f'AFGHead: per-class accuracy has shape {tuple(acc.shape)}, '
                f'expected ({self.num_classes},)'
            )
        acc = acc.to(self.confidence.device)
        seen = torch.isfinite(acc)
        if int(self.num_confidence_updates) > 0:
            diff = torch.where(seen, acc - self.prev_class_acc, 0.0)
            step = self.confidence_step * torch.sign(diff)
            moved = (self.confidence + step).clamp(*self.confidence_range)
            if self.statistics_ready:
                tail = self._prepare()['tail_device'].to(moved.device)
                moved = torch.where(tail, moved, self.confidence)
            self.confidence.copy_(moved)
        self.prev_class_acc.copy_(torch.where(seen, acc, self.prev_class_acc))
        self.num_confidence_updates += 1
        self.last_update_iter.fill_(int(iteration))
        for buf in (
            self.confidence,
            self.prev_class_acc,
            self.num_confidence_updates,
            self.last_update_iter,
        ):
            broadcast(buf, src=0)

    # ------------------------------------------------------------------
    # checkpoint: the bank is saved beside the buffers
    # ------------------------------------------------------------------
    def _save_to_state_dict(self, destination, prefix, keep_vars) -> None:
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if self.statistics_ready:
            for key, value in self.bank.state_dict().items():
                destination[prefix + _BANK_PREFIX + key] = value

    def _load_from_state_dict(
        self,
        state_dict,
        prefix,
        local_metadata,
        strict,
        missing_keys,
        unexpected_keys,
        error_msgs,
    ) -> None:
        start = prefix + _BANK_PREFIX
        bank_state = {
            key[len(start) :]: state_dict.pop(key)
            for key in list(state_dict)
            if key.startswith(start)
        }
        super()._load_from_state_dict(
            state_dict,
            prefix,
            local_metadata,
            strict,
            missing_keys,
            unexpected_keys,
            error_msgs,
        )
        if bank_state:
            self.reset_statistics()
            self.bank.load_state_dict(bank_state)
            self._tables = None
