"""Helpers shared by the long-tail wrapper and the class-aware sampler."""

from typing import Optional

import numpy as np

__all__ = ['dataset_labels', 'dataset_num_classes']


def dataset_labels(dataset) -> np.ndarray:
    """The single-label ground truth of every sample, as int64 in index order.

    Uses ``dataset.get_gt_labels()`` where it exists (every mmpretrain
    dataset and the wrappers of this package) and ``get_cat_ids(i)``
    otherwise.

    Raises:
        TypeError: the dataset offers neither method or is multi-label.
    """
    if hasattr(dataset, 'get_gt_labels'):
        labels = dataset.get_gt_labels()
    elif hasattr(dataset, 'get_cat_ids'):
        labels = [dataset.get_cat_ids(i) for i in range(len(dataset))]
    else:
        raise TypeError(
            f'{type(dataset).__name__} has neither get_gt_labels() nor '
            'get_cat_ids(); wrap an mmpretrain classification dataset.'
        )
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f'{type(dataset).__name__}: labels are not one integer per '
            'sample (a multi-label dataset?); long-tail subsets and '
            'class-aware sampling need single-label data.'
        ) from err
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise TypeError(
            f'{type(dataset).__name__}: expected one label per sample, got '
            f'labels of shape {labels.shape}.'
        )
    if labels.size and labels.min() < 0:
        raise ValueError(
            f'{type(dataset).__name__}: negative class label '
            f'{int(labels.min())}; labels must be class indices 0..C-1.'
        )
    return labels


def dataset_num_classes(dataset, labels: Optional[np.ndarray] = None) -> int:
    """C: ``len(metainfo['classes'])`` when known, else max label + 1."""
    metainfo = getattr(dataset, 'metainfo', None) or {}
    classes = metainfo.get('classes')
    if classes:
        return len(classes)
    if labels is None:
        labels = dataset_labels(dataset)
    return int(labels.max()) + 1 if labels.size else 0
