"""Many / medium / few-shot accuracy (METRICS)."""

from .long_tail_metric import (
    GROUPS,
    LongTailAccuracy,
    PerClassAccuracy,
    group_accuracy,
    per_class_accuracy,
    posthoc_adjusted_labels,
    rebalanced_labels,
    shot_groups,
)

__all__ = [
    'GROUPS',
    'LongTailAccuracy',
    'PerClassAccuracy',
    'group_accuracy',
    'per_class_accuracy',
    'posthoc_adjusted_labels',
    'rebalanced_labels',
    'shot_groups',
]
