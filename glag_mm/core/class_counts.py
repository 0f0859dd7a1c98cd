"""Class counts and the prior pi_c = n_c / N (docs/method.md, notation)."""

from typing import List, Optional, Sequence

import numpy as np
import torch


def check_class_counts(
    class_counts: Sequence[int],
    num_classes: Optional[int] = None,
    owner: str = 'class_counts',
    source: str = 'given',
) -> torch.Tensor:
    """n_c (float64) checked: length C, whole, every class >= 1 image;
    ``owner`` and ``source`` are named in the ValueError."""
    counts = torch.as_tensor(list(class_counts), dtype=torch.float64)
    if counts.ndim != 1 or counts.numel() == 0:
        raise ValueError(
            f'{owner}: class counts must be a non-empty 1-D '
            f'list, got shape {tuple(counts.shape)}'
        )
    if num_classes is not None and counts.numel() != num_classes:
        raise ValueError(
            f'{owner}: {counts.numel()} class counts {source} but the head '
            f'has num_classes={num_classes}; make them agree (one count per '
            "class index: the head's num_classes, the dataset's classes and "
            'any class_counts=[...] must name the same classes).'
        )
    if torch.any(counts != counts.round()) or torch.any(counts < 0):
        raise ValueError(
            f'{owner}: class counts must be non-negative integers'
        )
    empty = torch.nonzero(counts == 0).flatten().tolist()
    if empty:
        raise ValueError(
            f'{owner}: class(es) {empty[:10]} have zero training images; '
            'every class needs at least one (drop the class or fix the '
            'split / imbalance settings).'
        )
    return counts


def count_labels(
    labels: Sequence[int],
    num_classes: Optional[int] = None,
    source: str = 'labels',
) -> List[int]:
    """n_c from one label per sample (C: ``num_classes`` or max + 1); the
    ValueError names ``source`` and the first label outside [0, C)."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    bad = labels < 0
    if num_classes is not None:
        bad |= labels >= num_classes
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        allowed = f'[0, {num_classes})' if num_classes is not None else '>= 0'
        raise ValueError(
            f'{source}: sample {index} has label {int(labels[index])}, '
            f'outside {allowed} ({int(bad.sum())} such sample(s)); labels '
            "must be class indices 0..C-1: fix the dataset's annotations, "
            "or set the head's num_classes to the number of classes."
        )
    return np.bincount(labels, minlength=num_classes or 0).tolist()


def dataset_labels(dataset) -> np.ndarray:
    """int64 labels in index order from ``get_gt_labels()`` or
    ``get_cat_ids(i)``; TypeError for neither or multi-label."""
    if hasattr(dataset, 'get_gt_labels'):
        labels = dataset.get_gt_labels()
    elif hasattr(dataset, 'get_cat_ids'):
        labels = [dataset.get_cat_ids(i) for i in range(len(dataset))]
    else:
        raise TypeError(
            f'{type(dataset).__name__} has neither get_gt_labels() nor '
            'get_cat_ids(); wrap an mmpretrain classification dataset, or '
            'pass class_counts explicitly.'
        )
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f'{type(dataset).__name__}: labels are not one integer per '
            'sample (a multi-label dataset?); class counts, long-tail '
            'subsets and class-aware sampling need single-label data.'
        ) from err
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise TypeError(
            f'{type(dataset).__name__}: expected one label per sample, got '
            f'labels of shape {labels.shape}.'
        )
    return labels


def log_prior(
    class_counts: Sequence[int], num_classes: Optional[int] = None
) -> torch.Tensor:
    """log pi_c = log(n_c / N) as a float32 tensor."""
    counts = check_class_counts(class_counts, num_classes)
    return (counts / counts.sum()).log().float()
