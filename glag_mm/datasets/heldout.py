"""A seeded per-class held-out split of any classification dataset.

For data that is already long-tailed (a folder tree read with mmpretrain's
``CustomDataset``, a list file), validation must come out of the training
images, class by class, or the rare classes have nothing to validate on
(AFG's adaptive confidence reads per-class validation accuracy). Class c
with n_c images holds out

    h_c = min(max(floor(fraction * n_c), min_per_class), max_per_class,
              n_c - min_train_per_class)

images (``max_per_class`` optional; never below 0): the first h_c of a
permutation of the class's images seeded with ``(seed, c)``. ``split='train'``
is the other n_c - h_c images, so the two splits of one seed are disjoint
and together are the whole dataset, in every process and every run [ours].
"""

import math
from typing import List, Optional, Union

import numpy as np
from mmengine.dataset import BaseDataset as MMEngineBaseDataset
from mmengine.logging import print_log
from mmpretrain.registry import DATASETS

from ..core import check_integer
from .utils import IndexedSubset


def heldout_counts(
    counts,
    fraction: float,
    min_per_class: int = 1,
    max_per_class: Optional[int] = None,
    min_train_per_class: int = 1,
) -> List[int]:
    """h_c for each class count n_c (module docstring)."""
    held = []
    for n in counts:
        h = max(math.floor(fraction * int(n)), min_per_class)
        if max_per_class is not None:
            h = min(h, max_per_class)
        held.append(max(min(h, int(n) - min_train_per_class), 0))
    return held


@DATASETS.register_module()
class PerClassSplit(IndexedSubset):
    """The training or the held-out part of a per-class split.

    The same arguments but ``split`` serve both dataloaders::

        split = dict(type='PerClassSplit', fraction=0.1, min_per_class=2,
                     seed=0, dataset=dict(type='CustomDataset', ...))
        train_dataloader = dict(dataset=dict(split, split='train'))
        val_dataloader = dict(dataset=dict(split, split='heldout'))

    ``metainfo`` adds ``class_counts`` (this split's), ``heldout_counts``
    and, for the held-out split, ``train_class_counts``.
    """

    def __init__(
        self,
        dataset: Union[dict, MMEngineBaseDataset],
        split: str = 'train',
        fraction: float = 0.1,
        min_per_class: int = 1,
        max_per_class: Optional[int] = None,
        min_train_per_class: int = 1,
        seed: int = 0,
        lazy_init: bool = False,
    ) -> None:
        self._set_split(split)
        if not 0 <= fraction < 1:
            raise ValueError(
                f'PerClassSplit: fraction must be in [0, 1), got {fraction!r}'
                ' (e.g. 0.1 holds out a tenth of every class).'
            )
        self.fraction = float(fraction)

        def whole(name, value):
            return check_integer(
                name, value, at_least=0, owner='PerClassSplit'
            )

        self.min_per_class = whole('min_per_class', min_per_class)
        self.max_per_class = (
            None
            if max_per_class is None
            else whole('max_per_class', max_per_class)
        )
        self.min_train_per_class = whole(
            'min_train_per_class', min_train_per_class
        )
        self.seed = whole('seed', seed)
        self._wrap(dataset)
        if not lazy_init:
            self.full_init()

    def full_init(self) -> None:
        """Read the wrapped labels and choose this split's images (once)."""
        if self._fully_initialized:
            return
        labels, available = self._wrapped_labels()
        held = heldout_counts(
            available,
            self.fraction,
            self.min_per_class,
            self.max_per_class,
            self.min_train_per_class,
        )
        heldout = self.split == 'heldout'
        kept = self._keep_per_class(
            labels,
            self.seed,
            [(0, h) if heldout else (h, None) for h in held],
        )
        wanted = min(
            self.min_per_class,
            np.inf if self.max_per_class is None else self.max_per_class,
        )
        short = [c for c, h in enumerate(held) if h < wanted]
        if short:
            print_log(
                f'PerClassSplit: {len(short)} class(es) hold out fewer than '
                f'min_per_class={self.min_per_class} images to keep '
                f'min_train_per_class={self.min_train_per_class} for '
                f'training (e.g. class {short[0]}: {int(available[short[0]])}'
                f' images, {held[short[0]]} held out).',
                logger='current',
                level=30,
            )
        train = [int(a - h) for a, h in zip(available, held)]
        self._metainfo['heldout_counts'] = held
        self._metainfo['class_counts'] = list(held) if heldout else train
        if heldout:
            self._metainfo['train_class_counts'] = train
        self._fully_initialized = True
        print_log(
            f'PerClassSplit ({self.split}): {kept} of {len(labels)} images '
            f'(fraction {self.fraction:g}, seed {self.seed}, {len(held)} '
            f'classes, {sum(held)} held out)',
            logger='current',
        )
