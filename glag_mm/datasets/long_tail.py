"""A seeded long-tailed subset of any mmpretrain classification dataset.

The long-tail literature builds CIFAR-10/100-LT by keeping, for the class of
rank i (0 = largest), the first n_i images of a seeded random order of that
class (docs/method.md, evaluation conventions [prior]):

* ``'exp'``: n_i = floor(n_max * IF^(-i / (C - 1))); CIFAR-10 at IF 100:
  [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50] = 12,406 images;
* ``'step'`` (Buda et al.): the last floor(C / 2) classes keep
  floor(n_max / IF), the others n_max.
"""

import math
from typing import List, Optional, Sequence, Union

import numpy as np
from mmengine.dataset import BaseDataset as MMEngineBaseDataset
from mmengine.logging import print_log
from mmpretrain.registry import DATASETS

from ..core import check_integer, check_number
from .utils import IndexedSubset

PROFILES = ('exp', 'step')


def long_tail_counts(
    num_classes: int,
    max_count: int,
    imbalance_factor: float,
    profile: str = 'exp',
) -> List[int]:
    """n_0 >= ... >= n_{C-1} >= 1 kept by the class of rank i (module
    docstring); a class left with no image is a ValueError."""
    imbalance_factor = check_number(
        'imbalance_factor (n_max / n_min)', imbalance_factor, at_least=1
    )
    if profile not in PROFILES:
        raise ValueError(
            f'unknown long-tail profile {profile!r}; choose one of {PROFILES}'
        )
    num_classes = check_integer('num_classes', num_classes, at_least=1)
    max_count = check_integer('max_count', max_count, at_least=1)
    if profile == 'exp':
        if num_classes == 1:
            counts = [max_count]
        else:
            # Written as the literature writes it, (1 / IF) ** (i / (C - 1)),
            # so that the floors match its published subsets bit for bit.
            ratio = 1.0 / imbalance_factor
            counts = [
                int(max_count * ratio ** (i / (num_classes - 1.0)))
                for i in range(num_classes)
            ]
    else:
        minority = num_classes // 2
        counts = [max_count] * (num_classes - minority) + [
            math.floor(max_count / imbalance_factor)
        ] * minority
    if min(counts) < 1:
        raise ValueError(
            f'the {profile!r} profile with imbalance_factor='
            f'{imbalance_factor:g} and n_max={max_count} leaves class rank '
            f'{counts.index(0)} with no image; lower imbalance_factor to at '
            f'most {max_count} or raise max_count.'
        )
    return counts


@DATASETS.register_module()
class LongTailDataset(IndexedSubset):
    """Keep a seeded long-tailed subset of a classification dataset.

    The class of rank i (``class_order[i]``, default class i) keeps the
    first ``long_tail_counts(C, max_count, imbalance_factor, profile)[i]``
    of its images permuted by a generator seeded with (seed, class): the
    same images in every process and run, and for one seed a larger IF
    keeps a subset of a smaller one's. ``metainfo`` adds
    ``class_counts``, ``imbalance_factor`` and ``profile``. A class short
    of its target is a ValueError unless ``allow_shortage`` (then logged).

    ``split='heldout'`` [ours]: per class, the next ``heldout_per_class``
    images of the same order, never kept by the training subset, so
    validation never touches the test split; its ``class_counts`` are what
    it holds, the training subset's are ``train_class_counts``.
    """

    def __init__(
        self,
        dataset: Union[dict, MMEngineBaseDataset],
        imbalance_factor: float,
        profile: str = 'exp',
        seed: int = 0,
        class_order: Optional[Sequence[int]] = None,
        max_count: Optional[int] = None,
        allow_shortage: bool = False,
        lazy_init: bool = False,
        split: str = 'train',
        heldout_per_class: int = 20,
    ) -> None:
        self.imbalance_factor = check_number(
            'imbalance_factor (n_max / n_min)', imbalance_factor, at_least=1
        )
        self._set_split(split)
        self.heldout_per_class = check_integer(
            'heldout_per_class', heldout_per_class, at_least=1
        )
        # the same subset in every process: never a random seed
        self.seed = check_integer('seed', seed, at_least=0)
        if max_count is not None:
            max_count = check_integer('max_count', max_count, at_least=1)
        self._wrap(dataset)
        self.profile = profile
        self.class_order = None if class_order is None else list(class_order)
        self.max_count = max_count
        self.allow_shortage = allow_shortage
        self._metainfo.update(
            imbalance_factor=self.imbalance_factor, profile=profile
        )
        if not lazy_init:
            self.full_init()

    def _target_counts(self, available: np.ndarray) -> List[int]:
        """Per-class targets in class-index order, checked against supply."""
        num_classes = len(available)
        order = (
            list(range(num_classes))
            if self.class_order is None
            else self.class_order
        )
        if sorted(order) != list(range(num_classes)):
            raise ValueError(
                f'class_order must be a permutation of 0..{num_classes - 1} '
                f'(the wrapped dataset has {num_classes} classes), got '
                f'{order}'
            )
        max_count = self.max_count or int(available.max())
        by_rank = long_tail_counts(
            num_classes, max_count, self.imbalance_factor, self.profile
        )
        target = [0] * num_classes
        for rank, cls in enumerate(order):
            target[int(cls)] = by_rank[rank]
        empty = [c for c in range(num_classes) if available[c] == 0]
        if empty:
            raise ValueError(
                f'class(es) {empty[:10]} of the wrapped dataset have no '
                'image, so the long-tailed subset would leave them empty.'
            )
        short = [c for c in range(num_classes) if available[c] < target[c]]
        if short and not self.allow_shortage:
            details = ', '.join(
                f'class {c}: {int(available[c])} < {target[c]}'
                for c in short[:5]
            ) + (', ...' if len(short) > 5 else '')
            raise ValueError(
                'the wrapped dataset has too few images for the '
                f'{self.profile!r} profile ({details}); '
                'pass a smaller max_count (e.g. the smallest class count), '
                'another class_order, or allow_shortage=True.'
            )
        if short:
            print_log(
                f'LongTailDataset: {len(short)} class(es) keep fewer images '
                f'than the profile asks for (e.g. class {short[0]}: '
                f'{int(available[short[0]])} < {target[short[0]]}).',
                logger='current',
            )
        return [min(t, int(a)) for t, a in zip(target, available)]

    def full_init(self) -> None:
        """Read the wrapped labels and choose the kept images (once)."""
        if self._fully_initialized:
            return
        labels, available = self._wrapped_labels()
        counts = self._target_counts(available)
        held = self.heldout_per_class
        kept = self._keep_per_class(
            labels,
            self.seed,
            [
                (n, n + held) if self.split == 'heldout' else (0, n)
                for n in counts
            ],
        )
        if self.split == 'heldout' and not kept:
            raise ValueError(
                "LongTailDataset(split='heldout') is empty: the training "
                f'subset (imbalance_factor={self.imbalance_factor:g}, '
                f'max_count={self.max_count}) keeps every image of every '
                f'class ({int(available.min())}..{int(available.max())} per '
                'class), so none is left to hold out. Set max_count below '
                'the class sizes, raise imbalance_factor, or validate on '
                'another split.'
            )
        self._metainfo['class_counts'] = [int(c) for c in counts]
        if self.split == 'heldout':
            self._metainfo['train_class_counts'] = [int(c) for c in counts]
            self._metainfo['class_counts'] = np.bincount(
                self._labels, minlength=len(counts)
            ).tolist()
        self._fully_initialized = True
        print_log(
            f'LongTailDataset ({self.split}): kept {kept} of {len(labels)} '
            f'images ({self.profile!r}, imbalance_factor='
            f'{self.imbalance_factor:g}, {len(counts)} classes, max '
            f'{max(counts)}, min {min(counts)})',
            logger='current',
        )
