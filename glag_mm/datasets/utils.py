"""Helpers shared by the subset wrappers and the class-aware sampler."""

import copy
from typing import List, Optional

import numpy as np
from mmengine.dataset import BaseDataset as MMEngineBaseDataset
from mmengine.dataset import force_full_init
from mmpretrain.registry import DATASETS

from ..core.class_counts import count_labels, dataset_labels


def labels_and_counts(dataset, owner: str):
    """(labels, n_c) of a dataset: C is ``len(metainfo['classes'])`` when
    known, else max label + 1; a label outside [0, C) is a ValueError."""
    labels = dataset_labels(dataset)
    num_classes = dataset_num_classes(dataset, labels)
    source = f'{owner}: {type(dataset).__name__}'
    counts = count_labels(labels, num_classes, source)
    return labels, np.asarray(counts, dtype=np.int64)


def dataset_num_classes(dataset, labels: Optional[np.ndarray] = None) -> int:
    """C: ``len(metainfo['classes'])`` when known, else max label + 1."""
    metainfo = getattr(dataset, 'metainfo', None) or {}
    classes = metainfo.get('classes')
    if classes:
        return len(classes)
    if labels is None:
        labels = dataset_labels(dataset)
    return int(labels.max()) + 1 if labels.size else 0


class IndexedSubset:
    """Base of the wrappers that keep some samples of a dataset by index.

    A subclass calls :meth:`_wrap` in ``__init__`` and :meth:`_keep` in
    ``full_init``. A wrapped dataset built from a config dict is shrunk in
    place (``get_subset_``, freeing in-memory images); an instance passed in
    is never modified.
    """

    def _set_split(self, split: str) -> None:
        if split not in ('train', 'heldout'):
            raise ValueError(
                f'{type(self).__name__}: unknown split {split!r}; choose one '
                "of ('train', 'heldout') (the same arguments otherwise, for "
                'training and validation)'
            )
        self.split = split

    def _wrap(self, dataset) -> None:
        """Build (a config dict) or take (an instance) the wrapped dataset."""
        if isinstance(dataset, dict):
            self.dataset = DATASETS.build(dataset)
            self._owns_dataset = True
        elif hasattr(dataset, '__getitem__') and hasattr(dataset, '__len__'):
            self.dataset = dataset
            self._owns_dataset = False
        else:
            raise TypeError(
                'dataset must be a config dict or a dataset instance, got '
                f'{type(dataset).__name__}'
            )
        self._metainfo = dict(
            copy.deepcopy(getattr(self.dataset, 'metainfo', None) or {})
        )
        self._indices = np.zeros(0, dtype=np.int64)
        self._labels = np.zeros(0, dtype=np.int64)
        self._fully_initialized = False

    def _init_wrapped(self) -> None:
        """Fully initialise the wrapped dataset where it defers loading."""
        if hasattr(self.dataset, 'full_init'):
            self.dataset.full_init()

    def _wrapped_labels(self):
        """Initialise the wrapped dataset; its labels and per-class counts
        (a label outside its C classes is a ValueError)."""
        self._init_wrapped()
        return labels_and_counts(self.dataset, type(self).__name__)

    def _keep(self, indices: np.ndarray) -> None:
        """Keep the wrapped samples ``indices`` (sorted), in that order."""
        indices = np.asarray(indices, dtype=np.int64)
        if self._owns_dataset and isinstance(
            self.dataset, MMEngineBaseDataset
        ):
            self.dataset.get_subset_(indices.tolist())
            indices = np.arange(len(indices), dtype=np.int64)
        self._indices = indices

    def _keep_per_class(self, labels, seed: int, ranges) -> int:
        """Keep ``order[start:stop]`` of each class c for ``ranges`` one
        ``(start, stop)`` per class, ``order`` the class's sample indices
        permuted by ``np.random.default_rng([seed, c])`` (the same in every
        process); returns the number kept."""
        by_class = np.argsort(labels, kind='stable')  # dataset order
        bounds = np.cumsum(np.bincount(labels, minlength=len(ranges)))[:-1]
        chosen = []
        for c, members in enumerate(np.split(by_class, bounds)):
            order = np.random.default_rng([seed, c]).permutation(len(members))
            start, stop = ranges[c]
            chosen.append(members[order[start:stop]])
        indices = np.sort(np.concatenate(chosen)).astype(np.int64)
        self._labels = labels[indices]
        self._keep(indices)
        return len(indices)

    @property
    def metainfo(self) -> dict:
        """The wrapped dataset's metainfo plus what the wrapper adds."""
        return copy.deepcopy(self._metainfo)

    @force_full_init
    def __len__(self) -> int:
        return len(self._indices)

    @force_full_init
    def get_ori_index(self, idx: int) -> int:
        """Index in the wrapped dataset of sample ``idx`` of the subset."""
        return int(self._indices[idx])

    def __getitem__(self, idx: int) -> dict:
        """Sample ``idx`` through the wrapped dataset's pipeline."""
        return self.dataset[self.get_ori_index(idx)]

    def get_data_info(self, idx: int) -> dict:
        return self.dataset.get_data_info(self.get_ori_index(idx))

    @force_full_init
    def get_gt_labels(self) -> np.ndarray:
        """Labels of the kept samples (int64, subset order)."""
        return self._labels.copy()

    @force_full_init
    def get_cat_ids(self, idx: int) -> List[int]:
        return [int(self._labels[idx])]
