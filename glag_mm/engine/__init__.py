"""Hooks: class counts, distillation, feature statistics and confidence."""

from .afg_hook import AFGHook
from .class_counts_hook import ClassCountsHook, count_dataset_labels
from .distill_hook import GLAGDistillHook, LinearTeacher
from .feature_cache import FeatureTensorDataset
from .feature_cache_hook import FeatureCacheHook

__all__ = ['ClassCountsHook', 'count_dataset_labels']
__all__ += [
    'AFGHook',
    'GLAGDistillHook',
    'LinearTeacher',
    'FeatureCacheHook',
    'FeatureTensorDataset',
]
