"""A rehearsal (``--smoke``) run's dataset subset and end-of-stage test.

``SmokeSubset`` keeps the first few samples of a dataset.

``counts=[k_0, ..., k_{C-1}]`` keeps the first ``k_c`` images of class c
(:func:`rehearsal_counts` chooses them). ``per_class=True`` keeps, for
class c with n_c images, the first ``min(n_c, max(min_per_class,
ceil(f * n_c)))`` of them in the dataset's order, f = ``num / N``: about
``num`` images with every class present. Otherwise, or for a dataset
without labels, the first ``num`` samples are kept.
"""

import bisect
import math
from typing import Callable, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.dataset import BaseDataset as MMEngineBaseDataset
from mmengine.hooks import Hook
from mmpretrain.registry import DATASETS, HOOKS

from glag_mm.datasets.utils import (
    IndexedSubset,
    dataset_labels,
    dataset_num_classes,
)

__all__ = ['SmokeSubset', 'SmokeTestHook', 'rehearsal_counts']


def rehearsal_counts(
    counts: Sequence[int], breakpoints: Iterable[int], images: int = 0
) -> Tuple[List[int], Callable[[int], int]]:
    """Few images per class that keep every count rule of the real run.

    A rule compares a class count with a threshold: ``n < b`` (a tail
    class, ``tail_threshold=b``; no covariance, ``b=2``) or ``n <= b - 1``
    (``n_max``). With the breakpoints B and l(n) = 1 + |{b in B: n >= b}|,
    class c keeps s(n_c) = min(n_c, m l(n_c)) images, m >= 1 the largest
    multiplier with sum_c s(n_c) <= ``images`` (1 if none). s is
    non-decreasing and s(b - 1) < s(b) for every b in B, so for every
    integer n: n < b if and only if s(n) < s(b). A rule written with the
    threshold s(b) on the kept counts therefore decides every class as the
    real rule does on the real counts.

    Returns:
        the kept count per class and s (to map a threshold).
    """
    points = sorted({int(b) for b in breakpoints if b is not None})
    counts = [int(n) for n in counts]

    def level(n: int) -> int:
        return 1 + bisect.bisect_right(points, n)

    base = sum(min(n, level(n)) for n in counts)
    multiplier = 1
    while multiplier < max(counts + [1]):
        bigger = sum(min(n, (multiplier + 1) * level(n)) for n in counts)
        if bigger > max(images, base) or bigger == base:
            break
        multiplier, base = multiplier + 1, bigger

    def keep(n: int) -> int:
        return min(int(n), multiplier * level(int(n)))

    return [keep(n) for n in counts], keep


@DATASETS.register_module()
class SmokeSubset(IndexedSubset):
    """A small, deterministic subset of a dataset (module docstring).

    Args:
        dataset: a config dict or an instance.
        num: about how many samples to keep (at least 1).
        per_class: keep a share of every class rather than the first
            ``num`` samples.
        min_per_class: images kept per class at least, where it has them.
        counts: images kept per class (the first of each), instead of
            ``num`` and ``per_class``.
    """

    def __init__(
        self,
        dataset: Union[dict, MMEngineBaseDataset],
        num: int = 512,
        per_class: bool = False,
        min_per_class: int = 2,
        counts: Optional[Sequence[int]] = None,
    ) -> None:
        if int(num) != num or num < 1:
            raise ValueError(f'SmokeSubset: num must be >= 1, got {num!r}')
        self.num = int(num)
        self.per_class = bool(per_class)
        self.min_per_class = int(min_per_class)
        self.counts = None if counts is None else [int(k) for k in counts]
        self._wrap(dataset)
        self._labels = None
        self.full_init()

    def full_init(self) -> None:
        if self._fully_initialized:
            return
        self._init_wrapped()
        total = len(self.dataset)
        try:
            labels = dataset_labels(self.dataset)
        except TypeError:
            labels = None  # unlabelled: only the first samples
        if labels is not None and (self.per_class or self.counts):
            num_classes = dataset_num_classes(self.dataset, labels)
            counts = np.bincount(labels, minlength=num_classes)
            share = min(1.0, self.num / max(total, 1))
            keep = self.counts or [
                min(int(n), max(self.min_per_class, math.ceil(share * n)))
                for n in counts
            ]
            if len(keep) != num_classes:
                raise ValueError(
                    f'SmokeSubset: counts has {len(keep)} entries, the '
                    f'dataset {num_classes} classes'
                )
            chosen = [
                np.flatnonzero(labels == c)[:k] for c, k in enumerate(keep)
            ]
            indices = np.sort(np.concatenate(chosen)).astype(np.int64)
        else:
            indices = np.arange(min(self.num, total), dtype=np.int64)
        if labels is not None:
            self._labels = labels[indices]
            num_classes = dataset_num_classes(self.dataset, labels)
            self._metainfo['class_counts'] = np.bincount(
                self._labels, minlength=num_classes
            ).tolist()
        else:
            self._metainfo.pop('class_counts', None)
        self._keep(indices)
        self._fully_initialized = True

    def get_gt_labels(self) -> np.ndarray:
        if self._labels is None:
            raise TypeError('SmokeSubset: the wrapped dataset has no labels')
        return super().get_gt_labels()

    def get_cat_ids(self, idx: int) -> List[int]:
        if self._labels is None:
            raise TypeError('SmokeSubset: the wrapped dataset has no labels')
        return super().get_cat_ids(idx)


@HOOKS.register_module()
class SmokeTestHook(Hook):
    """Run the config's test loop once training has finished.

    A rehearsal checks every part of a config that a long run will need,
    the test dataloader and evaluator included, so each stage ends with a
    test on its (small) test subset. ``LOWEST`` priority: the other hooks
    have undone their training set-up (e.g. the feature cache) first.
    """

    priority = 'LOWEST'

    def after_train(self, runner) -> None:
        if runner.test_loop is None:
            return
        metrics = runner.test_loop.run()
        runner.logger.info(f'smoke test metrics: {metrics}')
