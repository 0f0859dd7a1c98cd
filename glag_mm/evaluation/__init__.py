"""Many / medium / few-shot accuracy, calibration and post-hoc tau."""

from .calibration_error import reliability_bins
from .functional import rebalanced_labels, shot_groups
from .long_tail_metric import LongTailAccuracy
from .posthoc_tau import (
    POSTHOC_TAU_KEY,
    get_selected_posthoc_tau,
    posthoc_labels_over_grid,
    select_posthoc_tau,
    set_selected_posthoc_tau,
)
from .summaries import PerClassAccuracy, ReliabilityTable
