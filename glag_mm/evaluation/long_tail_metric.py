"""Overall and many / medium / few-shot accuracy for long-tailed recognition.

The groups and prediction rules are in :mod:`.functional` (METHOD.md,
"Evaluation conventions"); the calibration error in
:mod:`.calibration_error`; the validation-selected post-hoc tau's run-time
state in :mod:`.posthoc_tau`.
"""

from typing import Any, Dict, List, Optional, Sequence, Union

import torch
from mmengine.evaluator import BaseMetric
from mmpretrain.registry import METRICS

from ..core import check_class_counts, log_prior
from ..runtime import get_train_class_counts
from .calibration_error import ECE_BINS, calibration_results
from .functional import (
    POSTHOC_CRITERIA,
    group_results,
    posthoc_adjusted_labels,
    posthoc_labels_over_grid,
    rebalanced_labels,
    shot_groups,
)
from .posthoc_tau import DEFAULT_TAU_GRID, ValSelectedTau, check_tau_grid
from .summaries import PerClassAccuracy

__all__ = ['LongTailAccuracy', 'PerClassAccuracy']


def _check_threshold(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f'LongTailAccuracy: {name} must be a number of training images, '
            f'got {value!r}'
        )
    if value < 0:
        raise ValueError(f'LongTailAccuracy: {name} must be >= 0, got {value}')
    return value


def _check_tau(name: str, value: Any) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f'LongTailAccuracy: {name} must be a number or None, got {value!r}'
        )
    if not value >= 0:
        raise ValueError(
            f'LongTailAccuracy: {name} must be >= 0 (None switches it off), '
            f'got {value}'
        )
    return float(value)


@METRICS.register_module()
class LongTailAccuracy(ValSelectedTau, BaseMetric):
    """Top-1 accuracy overall and per many / medium / few-shot group.

    Results (with the default prefix ``'lt'``), accuracies in percent:

    * ``lt/top1``: accuracy over all evaluation samples (a sample mean, as
      mmpretrain's ``Accuracy``);
    * ``lt/many``, ``lt/medium``, ``lt/few``: for each group the mean of the
      per-class accuracies of its classes (the convention of the OLTR and
      decoupling code; on a class-balanced test set it equals the sample
      mean over the group). Classes absent from the evaluation set are left
      out; a group with no evaluated class is left out of the results (e.g.
      CIFAR-10-LT IF 100 has no few-shot class), so that every value is a
      finite number and the logs stay strict JSON;
    * ``lt/class_mean``: the mean of the per-class accuracies over the
      classes with evaluation samples (equal to ``lt/top1`` on a
      class-balanced split; a selection criterion on a long-tailed one);
    * ``lt/ece``, ``lt/ece_many``, ... (``ece_bins``, with ``pred_score``):
      the expected calibration error of the top-1 predictions in percent,
      overall and over the samples whose true class is in each group
      (:mod:`.calibration_error`);
    * ``lt/top1_posthoc``, ``lt/many_posthoc``, ... with ``posthoc_tau``,
      and ``lt/posthoc_tau_selected`` with ``posthoc_tau='val'``;
    * ``lt/top1_rebalanced``, ``lt/many_rebalanced``, ... with
      ``rebalance_tau``;
    * ``lt/per_class`` (``per_class=True``): the per-class accuracies of the
      plain prediction, a list of C floats (NaN for classes without
      evaluation samples). mmengine's evaluator broadcasts the metrics, so
      hooks receive it in ``after_val_epoch(runner, metrics)`` on every rank
      (a :class:`PerClassAccuracy` on the main process, which logs as a
      one-line summary, and a plain list elsewhere);
    * ``lt/reliability`` (``reliability=True``, with ``pred_score``): the
      reliability table of the plain prediction, a dict of ``count``,
      ``confidence`` and ``accuracy`` lists over the ``ece_bins`` bins (None
      for empty bins) and ``ece``; ``tools/plot_reliability.py`` draws it.

    The groups come from the training class counts, never from the
    evaluation set: ``class_counts`` if given, otherwise those published by
    ``ClassCountsHook`` (:func:`glag_mm.runtime.get_train_class_counts`),
    read when the metric is computed and, with ``posthoc_tau``, also when a
    batch is processed: post-hoc labels are taken per sample there, so that
    no score has to be kept for them.

    Post-hoc tau chosen on validation (``posthoc_tau='val'``): evaluating
    the validation split, the metric takes the post-hoc labels for every tau
    of ``posthoc_tau_grid`` and reports the tau with the best validation
    accuracy (``posthoc_tau_criterion``) as ``posthoc_tau_selected``, with
    the ``*_posthoc`` accuracies at that tau. Evaluating the test split, it
    applies the tau last chosen on validation, read from the MessageHub,
    and never compares taus on test labels. Which split a metric evaluates
    is told by :class:`~glag_mm.engine.PosthocTauHook` (the validation
    evaluator selects, the test evaluator applies), which also keeps the
    choice in checkpoints, so ``tools/test.py`` applies it to a saved model;
    ``select_posthoc_tau`` sets it by hand. One config line serves both
    evaluators: ``val_evaluator = dict(type='LongTailAccuracy',
    posthoc_tau='val')`` with ``test_evaluator = val_evaluator``.

    Under DDP each rank keeps only what is needed per sample - the ground
    truth and predicted labels (and post-hoc labels, the top-1 confidence)
    as numbers; the C softmax scores only when ``rebalance_tau`` is set,
    since re-balancing needs the column sums over the whole set (N * C * 4
    bytes gathered on rank 0: about 0.8 GB for the 24,426 x 8,142 scores of
    iNaturalist 2018). mmengine's ``BaseMetric`` gathers them in sampler
    order, drops the padding and computes the metric on rank 0.

    Args:
        class_counts: training images per class, in class-index order.
            Default None: read from the message hub.
        many_threshold: many-shot classes have more training images than
            this. Default 100.
        few_threshold: few-shot classes have fewer training images than
            this. Default 20. Must not exceed ``many_threshold``.
        posthoc_tau: tau of post-hoc logit adjustment,
            argmax_j (log p_ij - tau * log pi_j): a number, ``'val'`` (chosen
            on the validation split, see above) or None (default: skipped).
            It applies to the scores the model returns: if the head already
            adjusts its predictions, this adjusts them again.
        posthoc_tau_grid: the taus compared on validation with
            ``posthoc_tau='val'``. Default 0.0, 0.1, ..., 2.0.
        posthoc_tau_criterion: what the validation selection maximises:
            ``'class_mean'`` (default; the mean per-class accuracy, which is
            top-1 on a balanced split, as the benchmarks' test sets are) or
            ``'top1'``. Ties go to the smallest tau.
        select_posthoc_tau: with ``posthoc_tau='val'``, True: this metric
            evaluates the validation split and chooses tau; False: it
            applies the chosen tau. None (default): ``PosthocTauHook``
            decides by the loop that runs the metric.
        rebalance_tau: tau of GALA's re-balancing, argmax_j p_ij / s_j**tau
            (GALA used 1.0 on CIFAR, 1.7 ImageNet-LT, 1.5 iNaturalist, 1.4
            Places-LT); None (default) skips it. The scores must be softmax
            probabilities (mmpretrain heads' ``pred_score`` are).
        ece_bins: bins of the expected calibration error; default 15 (Guo et
            al. 2017); 0 skips ECE and the reliability table.
        per_class: add ``per_class`` to the results. Default True.
        reliability: add ``reliability`` to the results. Default True.
        collect_device: 'cpu' or 'gpu', as in mmengine's ``BaseMetric``.
        prefix: metric name prefix. Default ``'lt'``.
        collect_dir: as in mmengine's ``BaseMetric``.
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
        collect_device: str = 'cpu',
        prefix: Optional[str] = None,
        collect_dir: Optional[str] = None,
    ) -> None:
        super().__init__(
            collect_device=collect_device,
            prefix=prefix,
            collect_dir=collect_dir,
        )
        self.class_counts = (
            None
            if class_counts is None
            else check_class_counts(class_counts, owner='LongTailAccuracy')
            .long()
            .tolist()
        )
        self.many_threshold = _check_threshold(
            'many_threshold', many_threshold
        )
        self.few_threshold = _check_threshold('few_threshold', few_threshold)
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
        self.posthoc_tau = (
            None
            if self.posthoc_from_val
            else _check_tau('posthoc_tau', posthoc_tau)
        )
        self.posthoc_tau_grid = check_tau_grid(posthoc_tau_grid)
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
        self.rebalance_tau = _check_tau('rebalance_tau', rebalance_tau)
        if (
            isinstance(ece_bins, bool)
            or not isinstance(ece_bins, int)
            or (ece_bins < 0)
        ):
            raise ValueError(
                'LongTailAccuracy: ece_bins must be a number of bins (15 is '
                f'usual; 0 switches ECE off), got {ece_bins!r}'
            )
        self.ece_bins = ece_bins
        self.per_class = bool(per_class)
        self.reliability = bool(reliability)
        self._log_prior_cache = None

    def _counts(self, num_classes: Optional[int]) -> List[int]:
        counts = self.class_counts
        if counts is None:
            counts = get_train_class_counts()
        if counts is None:
            raise ValueError(
                'LongTailAccuracy: no training class counts. Pass '
                "val_evaluator=dict(type='LongTailAccuracy', "
                'class_counts=[...]) or add custom_hooks=[dict(type='
                "'ClassCountsHook')] so the training set is counted."
            )
        check_class_counts(counts, num_classes, owner='LongTailAccuracy')
        return [int(c) for c in counts]

    def _log_prior(self, num_classes: int) -> torch.Tensor:
        counts = tuple(self._counts(num_classes))
        if self._log_prior_cache is None or self._log_prior_cache[0] != (
            counts
        ):
            self._log_prior_cache = (counts, log_prior(counts))
        return self._log_prior_cache[1]

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Keep the labels (and scores only if re-balancing needs them)."""
        posthoc = self.posthoc_tau
        grid = None
        if self.posthoc_from_val and data_samples:
            if self.selects_tau():
                grid = self.posthoc_tau_grid
            else:
                posthoc = self.applied_tau()
        needs_score = (
            posthoc is not None
            or grid is not None
            or self.rebalance_tau is not None
        )
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
                if needs_score:
                    raise ValueError(
                        'LongTailAccuracy: posthoc_tau / rebalance_tau need '
                        'pred_score in the data samples.'
                    )
            else:
                score = score.detach().cpu().flatten()
                result['num_classes'] = score.numel()
                if self.ece_bins and 0 <= result['pred'] < score.numel():
                    result['conf'] = float(score[result['pred']])
                if log_pi is None and (posthoc is not None or grid):
                    log_pi = self._log_prior(score.numel())  # once a batch
                if posthoc is not None:
                    result['pred_posthoc'] = int(
                        posthoc_adjusted_labels(score, log_pi, posthoc)
                    )
                if grid is not None:
                    result['pred_grid'] = posthoc_labels_over_grid(
                        score, log_pi, grid
                    ).to(torch.int32)
                if self.rebalance_tau is not None:
                    # clone: a row of the batch's score matrix would pickle
                    # the whole batch when results are gathered.
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
        table = None
        if self.ece_bins and all('conf' in r for r in results):
            conf = torch.tensor(
                [r['conf'] for r in results], dtype=torch.float64
            )
            calibration, table = calibration_results(
                conf, pred == target, target, groups, self.ece_bins
            )
            metrics.update(calibration)
        if all('pred_grid' in r for r in results):
            metrics.update(self.select_tau(results, target, groups))
        elif all('pred_posthoc' in r for r in results):
            if self.posthoc_from_val:
                metrics['posthoc_tau_selected'] = self.applied_tau()
            posthoc = torch.tensor([r['pred_posthoc'] for r in results])
            metrics.update(
                group_results(posthoc, target, groups, '_posthoc')[0]
            )
        if self.rebalance_tau is not None:
            scores = torch.stack([r['score'] for r in results])
            rebalanced = rebalanced_labels(scores, self.rebalance_tau)
            metrics.update(
                group_results(rebalanced, target, groups, '_rebalanced')[0]
            )
        if self.per_class:
            metrics['per_class'] = PerClassAccuracy(per_class.tolist())
        if self.reliability and table is not None:
            metrics['reliability'] = table
        return metrics
