"""Training-loop facts read from mmengine's MessageHub: the progress
(``iter`` / ``max_iters`` of ``RuntimeInfoHook``) and the training class
counts :class:`glag_mm.engine.ClassCountsHook` publishes, which every module
gets through :func:`resolve_class_counts`."""

from typing import List, Optional, Sequence

from mmengine.logging import MessageHub

from .core.class_counts import check_class_counts, count_labels, dataset_labels

CLASS_COUNTS_KEY = 'glag_train_class_counts'


def training_progress(default: float = 0.0) -> float:
    """u = iter / (max_iters - 1) in [0, 1]; ``default`` outside training."""
    hub = MessageHub.get_current_instance()
    max_iters = hub.get_info('max_iters')
    if not max_iters:
        return default
    it = hub.get_info('iter', 0)
    return min(max(it / max(max_iters - 1, 1), 0.0), 1.0)


def get_train_class_counts() -> Optional[List[int]]:
    """Per-class counts of the training set of the running stage, or None."""
    counts = MessageHub.get_current_instance().get_info(CLASS_COUNTS_KEY)
    return None if counts is None else [int(c) for c in counts]


def set_train_class_counts(counts) -> None:
    MessageHub.get_current_instance().update_info(
        CLASS_COUNTS_KEY, [int(c) for c in counts]
    )


def describe_dataset(dataset) -> str:
    """``Type('ann_file or data_root')``, wrapped datasets named inside."""
    parts = []
    while dataset is not None and len(parts) < 4:
        where = getattr(dataset, 'ann_file', '') or getattr(
            dataset, 'data_root', ''
        )
        name = type(dataset).__name__
        parts.append(f'{name}({where!r})' if where else name)
        dataset = getattr(dataset, 'dataset', None)
    return ' wrapping '.join(parts)


def count_dataset_labels(dataset, num_classes: Optional[int] = None):
    """Per-class counts of a dataset: ``metainfo['class_counts']`` where
    given, else its labels counted; labels are checked to lie in [0, C)
    (C = ``num_classes`` or ``len(metainfo['classes'])``)."""
    metainfo = getattr(dataset, 'metainfo', {}) or {}
    given = metainfo.get('class_counts')
    if not hasattr(dataset, 'get_gt_labels'):
        if given is not None:
            return [int(c) for c in given]
        raise TypeError(
            f'cannot count the labels of {type(dataset).__name__}: it has '
            "neither metainfo['class_counts'] nor get_gt_labels(); pass "
            'class_counts explicitly.'
        )
    if num_classes is None and metainfo.get('classes'):
        num_classes = len(metainfo['classes'])
    labels = dataset_labels(dataset)
    counts = count_labels(labels, num_classes, describe_dataset(dataset))
    return counts if given is None else [int(c) for c in given]


def resolve_class_counts(
    class_counts: Optional[Sequence[int]] = None,
    num_classes: Optional[int] = None,
    *,
    dataset=None,
    owner: str,
) -> List[int]:
    """The training class counts ``owner`` works with, validated.

    In order: ``class_counts`` given; else counted from ``dataset``; else
    those :class:`~glag_mm.engine.ClassCountsHook` published. Never val or
    test (docs/method.md stage one item 3). The ValueError says where counts
    came from.
    """
    if dataset is not None:  # its labels are checked even if counts given
        counted = count_dataset_labels(dataset, num_classes)
    if class_counts is not None:
        counts, source = class_counts, 'given (class_counts=[...])'
    elif dataset is not None:
        counts = counted
        source = (
            f'counted from the training dataset {describe_dataset(dataset)}'
        )
    else:
        counts = get_train_class_counts()
        source = 'counted from the training dataset (ClassCountsHook)'
    if counts is None:
        raise ValueError(
            f'{owner}: no training class counts. Pass class_counts=[...] '
            '(one count per class index), or add '
            "custom_hooks=[dict(type='ClassCountsHook')] to the config so "
            'they are counted from the training dataset (glag_mm '
            'tools/train.py adds it automatically).'
        )
    checked = check_class_counts(counts, num_classes, owner, source)
    return [int(c) for c in checked.tolist()]
