"""The first few samples of a dataset, for a rehearsal (``--smoke``) run.

``per_class=True`` keeps, for class c with n_c images, the first
``min(n_c, max(min_per_class, ceil(f * n_c)))`` of them in the dataset's
order, f = ``num / N``: about ``num`` images with every class present and
the long tail's shape kept, so class counts, the class-aware sampler, stage
two's statistics and per-class metrics see what they expect. Otherwise, or
for a dataset without labels, the first ``num`` samples are kept.
"""

import copy
import math
from typing import List, Union

import numpy as np
from mmengine.dataset import BaseDataset as MMEngineBaseDataset
from mmengine.dataset import force_full_init
from mmpretrain.registry import DATASETS

from .utils import dataset_labels, dataset_num_classes

__all__ = ['SmokeSubset']


@DATASETS.register_module()
class SmokeSubset:
    """A small, deterministic subset of a dataset (module docstring).

    Args:
        dataset: a config dict or an instance.
        num: about how many samples to keep (at least 1).
        per_class: keep a share of every class rather than the first
            ``num`` samples.
        min_per_class: images kept per class at least, where it has them.
    """

    def __init__(
        self,
        dataset: Union[dict, MMEngineBaseDataset],
        num: int = 512,
        per_class: bool = False,
        min_per_class: int = 2,
    ) -> None:
        if int(num) != num or num < 1:
            raise ValueError(f'SmokeSubset: num must be >= 1, got {num!r}')
        self.num = int(num)
        self.per_class = bool(per_class)
        self.min_per_class = int(min_per_class)
        self._owns = isinstance(dataset, dict)
        self.dataset = DATASETS.build(dataset) if self._owns else dataset
        self._metainfo = dict(
            copy.deepcopy(getattr(self.dataset, 'metainfo', None) or {})
        )
        self._indices = np.zeros(0, dtype=np.int64)
        self._labels = None
        self._fully_initialized = False
        self.full_init()

    @property
    def metainfo(self) -> dict:
        return copy.deepcopy(self._metainfo)

    def full_init(self) -> None:
        if self._fully_initialized:
            return
        if hasattr(self.dataset, 'full_init'):
            self.dataset.full_init()
        total = len(self.dataset)
        try:
            labels = dataset_labels(self.dataset)
        except TypeError:
            labels = None  # unlabelled: only the first samples
        if self.per_class and labels is not None:
            num_classes = dataset_num_classes(self.dataset, labels)
            counts = np.bincount(labels, minlength=num_classes)
            share = min(1.0, self.num / max(total, 1))
            keep = [
                min(int(n), max(self.min_per_class, math.ceil(share * n)))
                for n in counts
            ]
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
        if self._owns and isinstance(self.dataset, MMEngineBaseDataset):
            self.dataset.get_subset_(indices.tolist())
            indices = np.arange(len(indices), dtype=np.int64)
        self._indices = indices
        self._fully_initialized = True

    @force_full_init
    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, idx: int) -> dict:
        return self.dataset[int(self._indices[idx])]

    def get_data_info(self, idx: int) -> dict:
        return self.dataset.get_data_info(int(self._indices[idx]))

    def get_gt_labels(self) -> np.ndarray:
        if self._labels is None:
            raise TypeError('SmokeSubset: the wrapped dataset has no labels')
        return self._labels.copy()

    def get_cat_ids(self, idx: int) -> List[int]:
        if self._labels is None:
            raise TypeError('SmokeSubset: the wrapped dataset has no labels')
        return [int(self._labels[idx])]
