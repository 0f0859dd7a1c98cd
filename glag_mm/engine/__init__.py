"""Hooks: class counts, distillation, feature statistics and confidence."""

from .class_counts_hook import ClassCountsHook, count_dataset_labels

__all__ = ['ClassCountsHook', 'count_dataset_labels']
