"""Overall and many / medium / few-shot accuracy (rules: :mod:`.functional`,
METHOD.md "Evaluation conventions")."""

import json
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Union

import torch
from mmengine.evaluator import BaseMetric
from mmpretrain.registry import METRICS

from ..core import check_integer, check_number, log_prior
from ..runtime import resolve_class_counts
from .calibration_error import ECE_BINS, reliability_bins
from .functional import group_results, rebalanced_labels, shot_groups
from .posthoc_tau import (
    DEFAULT_TAU_GRID,
    POSTHOC_CRITERIA,
    ValSelectedTau,
    posthoc_labels_over_grid,
)
from .summaries import PerClassAccuracy

OWNER = 'LongTailAccuracy'


def _check(name: str, value: Any) -> Optional[float]:
    """A number >= 0 (None: switched off)."""
    if value is None:
        return None
    return check_number(name, value, at_least=0, owner=OWNER)


def write_samples(path: str, samples: Dict[str, List[int]]) -> None:
    """Write per-image labels as JSON (replacing the file in one step)."""
    if osp.dirname(path):
        os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path + '.tmp', 'w') as f:
        json.dump(samples, f)
    os.replace(path + '.tmp', path)


@METRICS.register_module()
class LongTailAccuracy(ValSelectedTau, BaseMetric):
    """Top-1 accuracy overall and per many / medium / few-shot group.

    Results (prefix ``'lt'``, percent): ``top1`` (sample mean), ``many`` /
    ``medium`` / ``few`` (mean per-class accuracy of the group, the OLTR /
    decoupling convention; absent classes and empty groups are left out so
    every value is finite), ``class_mean``; with ``pred_score`` and
    ``ece_bins``: ``ece`` overall and per group and ``reliability`` (the
    table ``tools/plot_reliability.py`` draws); ``*_posthoc`` with
    ``posthoc_tau`` (argmax_j log p_ij - tau log pi_j, applied on top of
    what the head returns), ``*_rebalanced`` with ``rebalance_tau`` (GALA's
    argmax_j p_ij / s_j**tau: 1.0 CIFAR, 1.7 ImageNet-LT, 1.5 iNaturalist,
    1.4 Places-LT); ``per_class`` (a :class:`PerClassAccuracy` on the main
    process, NaN for classes without samples).

    The groups (more than ``many_threshold`` / fewer than ``few_threshold``
    training images) come from the training counts, never the evaluation
    set: ``class_counts`` or :func:`glag_mm.runtime.get_train_class_counts`.

    ``posthoc_tau='val'``: on the validation split every tau of
    ``posthoc_tau_grid`` is scored and the best by ``posthoc_tau_criterion``
    (``'class_mean'`` or ``'top1'``, ties to the smallest tau) is reported
    as ``posthoc_tau_selected``; on the test split the tau last chosen on
    validation is applied, never compared on test labels.
    ``select_posthoc_tau`` (None: :class:`~glag_mm.engine.PosthocTauHook`
    decides by loop) says which split this metric evaluates.

    ``samples_file``: a JSON file that each evaluation overwrites with its
    per-image labels (the last evaluation's remain): ``gt``, ``pred`` and,
    where computed, ``pred_posthoc`` (at the tau reported) and
    ``pred_rebalanced``, one entry per image in the gathered order. The
    selection tool reads it for the noise of a validation score.

    Per sample only labels (and post-hoc labels, top-1 confidence) are kept;
    the C scores only for ``rebalance_tau``, which needs column sums over
    the whole set (0.8 GB gathered on rank 0 for iNaturalist 2018's test).
    """

    default_prefix: Optional[str] = 'lt'

    def __init__(
        self,
        class_counts: Optional[Sequence[int]] = None,
        many_threshold: float = 100,
        few_threshold: float = 20,
        posthoc_tau: Union[float, str, None] = None,
        posthoc_tau_grid: Sequence[float] = DEFAULT_TAU_GRID,
        posthoc_tau_criterion: str = 'class_mean',
        select_posthoc_tau: Optional[bool] = None,
        rebalance_tau: Optional[float] = None,
        ece_bins: int = ECE_BINS,
        per_class: bool = True,
        reliability: bool = True,
        samples_file: Optional[str] = None,
        **kwargs,  # BaseMetric's collect_device, prefix, collect_dir
    ) -> None:
        super().__init__(**kwargs)
        self.class_counts = class_counts
        if class_counts is not None:
            self.class_counts = self._counts()
        self.many_threshold = _check('many_threshold', many_threshold)
        self.few_threshold = _check('few_threshold', few_threshold)
        if self.few_threshold > self.many_threshold:
            raise ValueError(
                f'LongTailAccuracy: few_threshold ({few_threshold}) must not '
                f'exceed many_threshold ({many_threshold}), or the few- and '
                'many-shot groups would overlap.'
            )
        if isinstance(posthoc_tau, str) and posthoc_tau != 'val':
            raise TypeError(
                "LongTailAccuracy: posthoc_tau must be a number, 'val' "
                '(chosen on the validation split) or None, got '
                f'{posthoc_tau!r}'
            )
        self.posthoc_from_val = posthoc_tau == 'val'
        self.posthoc_tau = None
        if not self.posthoc_from_val:
            self.posthoc_tau = _check('posthoc_tau', posthoc_tau)
        grid = posthoc_tau_grid
        if not isinstance(grid, (list, tuple)) or not grid:
            raise ValueError(
                'LongTailAccuracy: posthoc_tau_grid must be a non-empty list '
                f'of taus >= 0, e.g. [0.0, 0.5, 1.0, 1.5], got {grid!r}'
            )
        self.posthoc_tau_grid = tuple(
            check_number('posthoc_tau_grid', t, at_least=0, owner=OWNER)
            for t in grid
        )
        if posthoc_tau_criterion not in POSTHOC_CRITERIA:
            raise ValueError(
                'LongTailAccuracy: posthoc_tau_criterion must be one of '
                f'{POSTHOC_CRITERIA}, got {posthoc_tau_criterion!r}'
            )
        self.posthoc_tau_criterion = posthoc_tau_criterion
        if select_posthoc_tau not in (None, True, False):
            raise TypeError(
                'LongTailAccuracy: select_posthoc_tau must be True, False or '
                f'None, got {select_posthoc_tau!r}'
            )
        self.select_posthoc_tau = select_posthoc_tau
        self.rebalance_tau = _check('rebalance_tau', rebalance_tau)
        self.ece_bins = check_integer(  # 0 switches ECE off
            'ece_bins', ece_bins, at_least=0, owner=OWNER
        )
        self.per_class = bool(per_class)
        self.reliability = bool(reliability)
        if samples_file is not None and not isinstance(samples_file, str):
            raise TypeError(
                'LongTailAccuracy: samples_file must be a path (str) or None, '
                f'got {samples_file!r}'
            )
        self.samples_file = samples_file

    def _counts(self, num_classes: Optional[int] = None) -> List[int]:
        """``class_counts``, else those ClassCountsHook counted; checked."""
        return resolve_class_counts(
            self.class_counts, num_classes, owner=OWNER
        )

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Keep the labels (and scores only if re-balancing needs them)."""
        taus = self.posthoc_taus() if data_samples else None
        log_pi = None
        for sample in data_samples:
            gt = sample.get('gt_label')
            if gt is None or torch.as_tensor(gt).numel() != 1:
                raise ValueError(
                    'LongTailAccuracy needs one gt_label per data sample '
                    '(single-label classification).'
                )
            score = sample.get('pred_score')
            label = sample.get('pred_label')
            if label is None and score is None:
                raise ValueError(
                    'LongTailAccuracy: a data sample has neither pred_score '
                    'nor pred_label; evaluate a classifier in predict mode.'
                )
            if label is None:
                label = score.argmax()
            result = {'gt': int(gt), 'pred': int(label)}
            if score is None:
                if taus is not None or self.rebalance_tau is not None:
                    raise ValueError(
                        'LongTailAccuracy: posthoc_tau / rebalance_tau need '
                        'pred_score in the data samples.'
                    )
            else:
                score = score.detach().cpu().flatten()
                result['num_classes'] = score.numel()
                if self.ece_bins and 0 <= result['pred'] < score.numel():
                    result['conf'] = float(score[result['pred']])
                if taus is not None:  # labels at each tau, not the scores
                    if log_pi is None:  # once a batch
                        log_pi = log_prior(self._counts(score.numel()))
                    result['pred_posthoc'] = posthoc_labels_over_grid(
                        score, log_pi, taus
                    ).tolist()
                if self.rebalance_tau is not None:  # clone: not the batch
                    result['score'] = score.float().clone()
            self.results.append(result)

    def _num_classes(self, results: List[dict]) -> Optional[int]:
        sizes = {r['num_classes'] for r in results if 'num_classes' in r}
        if len(sizes) > 1:
            raise ValueError(
                f'LongTailAccuracy: pred_score sizes differ: {sorted(sizes)}'
            )
        if sizes:
            return sizes.pop()
        classes = (self.dataset_meta or {}).get('classes')
        return len(classes) if classes else None

    def compute_metrics(self, results: List[dict]) -> Dict[str, Any]:
        """Compute the accuracies from the gathered per-sample results."""
        if not results:
            raise ValueError('LongTailAccuracy: no results to evaluate.')
        counts = self._counts(self._num_classes(results))
        num_classes = len(counts)
        target = torch.tensor([r['gt'] for r in results], dtype=torch.long)
        pred = torch.tensor([r['pred'] for r in results], dtype=torch.long)
        for name, labels in (('ground-truth', target), ('predicted', pred)):
            if labels.min() < 0 or labels.max() >= num_classes:
                raise ValueError(
                    f'LongTailAccuracy: {name} labels must lie in '
                    f'[0, {num_classes}) to match the {num_classes} class '
                    f'counts, got [{labels.min()}, {labels.max()}].'
                )
        groups = shot_groups(counts, self.many_threshold, self.few_threshold)

        metrics, per_class = group_results(pred, target, groups)
        samples = dict(gt=target.tolist(), pred=pred.tolist())
        table = None
        if self.ece_bins and all('conf' in r for r in results):
            conf = [r['conf'] for r in results]
            conf = torch.tensor(conf, dtype=torch.float64)
            hit = pred == target
            table = reliability_bins(conf, hit, self.ece_bins)
            metrics['ece'] = table['ece']
            for name, class_mask in groups.items():  # samples of its classes
                m = class_mask[target]
                if m.any():
                    ece = reliability_bins(conf[m], hit[m], self.ece_bins)
                    metrics[f'ece_{name}'] = ece['ece']
        if all('pred_posthoc' in r for r in results):
            labels = torch.tensor([r['pred_posthoc'] for r in results])
            posthoc, labels = self.posthoc_results(labels.T, target, groups)
            metrics.update(posthoc)
            samples['pred_posthoc'] = labels.tolist()
        if self.rebalance_tau is not None:
            scores = torch.stack([r['score'] for r in results])
            rebalanced = rebalanced_labels(scores, self.rebalance_tau)
            metrics.update(
                group_results(rebalanced, target, groups, '_rebalanced')[0]
            )
            samples['pred_rebalanced'] = rebalanced.tolist()
        if self.samples_file is not None:
            write_samples(self.samples_file, samples)
        if self.per_class:
            metrics['per_class'] = PerClassAccuracy(per_class.tolist())
        if self.reliability and table is not None:
            metrics['reliability'] = table
        return metrics
