"""Class counts and the class prior pi_c = n_c / N (METHOD.md, notation)."""

from typing import Optional, Sequence

import torch

__all__ = ['check_class_counts', 'log_prior']


def check_class_counts(
    class_counts: Sequence[int],
    num_classes: Optional[int] = None,
    owner: str = 'class_counts',
) -> torch.Tensor:
    """Validate per-class training counts and return them as a tensor.

    Args:
        class_counts: n_c for c = 0..C-1, in class-index order.
        num_classes: C expected by the model head, if known.
        owner: what the counts are for, named in error messages.

    Raises:
        ValueError: wrong length, a negative or non-integer count, or a class
            with zero images (its log-prior is -inf).
    """
    counts = torch.as_tensor(list(class_counts), dtype=torch.float64)
    if counts.ndim != 1 or counts.numel() == 0:
        raise ValueError(
            f'{owner}: class counts must be a non-empty 1-D '
            f'list, got shape {tuple(counts.shape)}'
        )
    if num_classes is not None and counts.numel() != num_classes:
        raise ValueError(
            f'{owner}: {counts.numel()} class counts given but the head has '
            f'num_classes={num_classes}; make them agree (the counts come '
            'from the training dataset, one per class index).'
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


def log_prior(
    class_counts: Sequence[int], num_classes: Optional[int] = None
) -> torch.Tensor:
    """log pi_c = log(n_c / N) as a float32 tensor."""
    counts = check_class_counts(class_counts, num_classes)
    return (counts / counts.sum()).log().float()
