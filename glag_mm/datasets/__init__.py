"""glag_mm.datasets: long-tailed subsets, LT split readers, samplers."""

from .feature_dataset import FeatureTensorDataset
from .heldout import PerClassSplit, heldout_counts
from .long_tail import PROFILES, LongTailDataset, long_tail_counts
from .lt_lists import (
    ImageNetLT,
    INaturalist2018,
    LongTailListDataset,
    PlacesLT,
)
from .samplers import ClassAwareSampler
from .utils import dataset_labels, dataset_num_classes
