"""Overall and many / medium / few-shot accuracy for long-tailed recognition.

METHOD.md, "Evaluation conventions" [prior: Liu et al. 2019 (OLTR); Kang et
al. 2020 (decoupling)]: classes are grouped by the number of *training*
images n_c - many (n_c > 100), medium (20 <= n_c <= 100), few (n_c < 20) -
and the accuracy of a group is the mean of the per-class accuracies of its
classes. Two prediction rules can be reported beside the plain argmax:

* post-hoc logit adjustment [prior: Menon et al. 2021; METHOD.md stage one,
  item 4]: y_hat_i = argmax_j (log p_ij - tau * log pi_j), which equals
  argmax_j (z_ij - tau * log pi_j) because log softmax(z_i) differs from
  z_i by a constant per row;
* GALA's transductive prediction re-balancing [prior: GALA, arXiv
  2403.09036; METHOD.md, "Sibling losses"]: with p_i = softmax(z_i) and
  s_j = sum_i p_ij over the whole evaluation set,
  y_hat_i = argmax_j p_ij / s_j ** tau.
"""

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.evaluator import BaseMetric
from mmpretrain.registry import METRICS

from ..core import check_class_counts, log_prior
from ..runtime import get_train_class_counts

__all__ = [
    'GROUPS',
    'LongTailAccuracy',
    'PerClassAccuracy',
    'shot_groups',
    'per_class_accuracy',
    'group_accuracy',
    'posthoc_adjusted_labels',
    'rebalanced_labels',
]

GROUPS = ('many', 'medium', 'few')


def shot_groups(
    class_counts: Sequence[int],
    many_threshold: float = 100,
    few_threshold: float = 20,
) -> Dict[str, torch.Tensor]:
    """Boolean class masks of the many / medium / few-shot groups.

    many: n_c > many_threshold; few: n_c < few_threshold; medium: the rest.
    """
    counts = torch.as_tensor(list(class_counts), dtype=torch.float64)
    many = counts > many_threshold
    few = counts < few_threshold
    return {'many': many, 'medium': ~(many | few), 'few': few}


def per_class_accuracy(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """acc_c = 100 * #(pred == target == c) / #(target == c), float64.

    Classes without evaluation samples get NaN.
    """
    total = torch.bincount(target, minlength=num_classes).double()
    correct = torch.bincount(
        target[pred == target], minlength=num_classes
    ).double()
    acc = correct / total * 100
    acc[total == 0] = math.nan
    return acc


def group_accuracy(per_class: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean of the per-class accuracies of the group's evaluated classes.

    NaN when the group has no class with evaluation samples.
    """
    values = per_class[mask]
    values = values[~values.isnan()]
    return values.mean().item() if values.numel() else math.nan


def posthoc_adjusted_labels(
    scores: torch.Tensor, log_pi: torch.Tensor, tau: float
) -> torch.Tensor:
    """argmax_j (log p_ij - tau * log pi_j) for softmax scores p (N, C)."""
    return (scores.double().log() - tau * log_pi.double()).argmax(dim=-1)


def rebalanced_labels(scores: torch.Tensor, tau: float) -> torch.Tensor:
    """argmax_j p_ij / s_j ** tau, s_j = sum_i p_ij over all N rows (GALA)."""
    scores = scores.double()
    column_sums = scores.sum(dim=0).clamp_min(torch.finfo(torch.float64).tiny)
    return (scores / column_sums**tau).argmax(dim=-1)


class PerClassAccuracy(list):
    """Per-class accuracies (percent) that print as a one-line summary.

    A plain ``list`` of floats for every purpose except ``str`` / ``repr``:
    mmengine's ``RuntimeInfoHook`` stores non-scalar metrics in the message
    hub and the log processor prints them on the validation / test log line,
    which for ImageNet-LT would be 1,000 numbers per epoch. Pickling (the
    broadcast to other ranks, checkpoints of the message hub) turns it into a
    plain list, so no saved file refers to this class.
    """

    def __repr__(self) -> str:
        values = [v for v in self if not math.isnan(v)]
        if not values:
            return f'<per-class accuracy of {len(self)} classes>'
        return (
            f'<per-class accuracy of {len(self)} classes: min '
            f'{min(values):.2f}, mean {sum(values) / len(values):.2f}, '
            f'max {max(values):.2f}>'
        )

    __str__ = __repr__

    def __reduce__(self):
        return (list, (list(self),))

    def __copy__(self) -> 'PerClassAccuracy':
        return PerClassAccuracy(self)

    def __deepcopy__(self, memo: dict) -> 'PerClassAccuracy':
        return PerClassAccuracy(self)


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
class LongTailAccuracy(BaseMetric):
    """Top-1 accuracy overall and per many / medium / few-shot group.

    Results (with the default prefix ``'lt'``), all in percent:

    * ``lt/top1``: accuracy over all evaluation samples (a sample mean, as
      mmpretrain's ``Accuracy``);
    * ``lt/many``, ``lt/medium``, ``lt/few``: for each group the mean of the
      per-class accuracies of its classes (the convention of the OLTR and
      decoupling code; on a class-balanced test set it equals the sample
      mean over the group). Classes absent from the evaluation set are left
      out; a group with no evaluated class reports NaN (the key is always
      present, e.g. CIFAR-10-LT IF 100 has no few-shot class);
    * ``lt/top1_posthoc``, ``lt/many_posthoc``, ... with ``posthoc_tau``;
    * ``lt/top1_rebalanced``, ``lt/many_rebalanced``, ... with
      ``rebalance_tau``;
    * ``lt/per_class`` (``per_class=True``): the per-class accuracies of the
      plain prediction, a list of C floats (NaN for classes without
      evaluation samples). mmengine's evaluator broadcasts the metrics, so
      hooks receive it in ``after_val_epoch(runner, metrics)`` on every rank
      (a :class:`PerClassAccuracy` on the main process, which logs as a
      one-line summary, and a plain list elsewhere).

    The groups come from the training class counts, never from the
    evaluation set: ``class_counts`` if given, otherwise those published by
    ``ClassCountsHook`` (:func:`glag_mm.runtime.get_train_class_counts`),
    read when the metric is computed and, with ``posthoc_tau``, also when a
    batch is processed: the post-hoc label is taken per sample there, so
    that no score has to be kept for it.

    Under DDP each rank keeps only what is needed per sample - the ground
    truth and predicted labels (and the post-hoc label) as integers; the C
    softmax scores only when ``rebalance_tau`` is set, since re-balancing
    needs the column sums over the whole set (N * C * 4 bytes gathered on
    rank 0: about 0.8 GB for the 24,426 x 8,142 scores of iNaturalist 2018).
    mmengine's ``BaseMetric`` gathers them in sampler order, drops the
    padding and computes the metric on rank 0.

    Args:
        class_counts: training images per class, in class-index order.
            Default None: read from the message hub.
        many_threshold: many-shot classes have more training images than
            this. Default 100.
        few_threshold: few-shot classes have fewer training images than
            this. Default 20. Must not exceed ``many_threshold``.
        posthoc_tau: tau of post-hoc logit adjustment,
            argmax_j (log p_ij - tau * log pi_j); None (default) skips it.
            It applies to the scores the model returns: if the head already
            adjusts its predictions, this adjusts them again.
        rebalance_tau: tau of GALA's re-balancing, argmax_j p_ij / s_j**tau
            (GALA used 1.0 on CIFAR, 1.7 ImageNet-LT, 1.5 iNaturalist, 1.4
            Places-LT); None (default) skips it. The scores must be softmax
            probabilities (mmpretrain heads' ``pred_score`` are).
        per_class: add ``per_class`` to the results. Default True.
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
        posthoc_tau: Optional[float] = None,
        rebalance_tau: Optional[float] = None,
        per_class: bool = True,
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
        self.posthoc_tau = _check_tau('posthoc_tau', posthoc_tau)
        self.rebalance_tau = _check_tau('rebalance_tau', rebalance_tau)
        self.per_class = bool(per_class)
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
            needs_score = (
                self.posthoc_tau is not None or self.rebalance_tau is not None
            )
            if score is None:
                if needs_score:
                    raise ValueError(
                        'LongTailAccuracy: posthoc_tau / rebalance_tau need '
                        'pred_score in the data samples.'
                    )
            else:
                score = score.detach().cpu().flatten()
                result['num_classes'] = score.numel()
                if self.posthoc_tau is not None:
                    log_pi = self._log_prior(score.numel())
                    result['pred_posthoc'] = int(
                        posthoc_adjusted_labels(
                            score, log_pi, self.posthoc_tau
                        )
                    )
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

    def _accuracies(
        self,
        pred: torch.Tensor,
        target: torch.Tensor,
        groups: Dict[str, torch.Tensor],
        suffix: str = '',
    ) -> Tuple[Dict[str, float], torch.Tensor]:
        per_class = per_class_accuracy(pred, target, len(groups['many']))
        metrics = {
            f'top1{suffix}': (pred == target).double().mean().item() * 100
        }
        for name in GROUPS:
            metrics[f'{name}{suffix}'] = group_accuracy(
                per_class, groups[name]
            )
        return metrics, per_class

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

        metrics, per_class = self._accuracies(pred, target, groups)
        if self.posthoc_tau is not None:
            posthoc = torch.tensor([r['pred_posthoc'] for r in results])
            metrics.update(
                self._accuracies(posthoc, target, groups, '_posthoc')[0]
            )
        if self.rebalance_tau is not None:
            scores = torch.stack([r['score'] for r in results])
            rebalanced = rebalanced_labels(scores, self.rebalance_tau)
            metrics.update(
                self._accuracies(rebalanced, target, groups, '_rebalanced')[0]
            )
        if self.per_class:
            metrics['per_class'] = PerClassAccuracy(per_class.tolist())
        return metrics
