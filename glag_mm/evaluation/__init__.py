"""Many / medium / few-shot accuracy, calibration and post-hoc tau."""

from .calibration_error import (
    ECE_BINS,
    calibration_results,
    confidence_bins,
    expected_calibration_error,
    reliability_bins,
)
from .functional import (
    GROUPS,
    group_accuracy,
    group_results,
    per_class_accuracy,
    posthoc_adjusted_labels,
    posthoc_labels_over_grid,
    rebalanced_labels,
    select_posthoc_tau,
    shot_groups,
)
from .long_tail_metric import LongTailAccuracy
from .posthoc_tau import (
    DEFAULT_TAU_GRID,
    POSTHOC_TAU_KEY,
    get_selected_posthoc_tau,
    set_selected_posthoc_tau,
)
from .summaries import PerClassAccuracy, ReliabilityTable
