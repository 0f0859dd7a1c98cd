"""glag_mm.datasets: long-tailed subsets, LT split readers, samplers."""

from .long_tail import PROFILES, LongTailDataset, long_tail_counts
from .utils import dataset_labels, dataset_num_classes

__all__ = [
    'PROFILES',
    'LongTailDataset',
    'long_tail_counts',
    'dataset_labels',
    'dataset_num_classes',
]
