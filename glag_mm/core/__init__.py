"""The method as pure PyTorch (no OpenMMLab imports)."""

from .calibration import (
    calibrated_mean,
    check_generation_setup,
    generation_plan,
    num_donors,
    support_sets,
    tail_classes,
)
from .checks import check_choice, check_integer, check_number
from .class_counts import check_class_counts, log_prior
from .class_statistics import ClassStatistics
from .distill import distillation_loss
from .fbl import authors_curriculum, fbl_class_strength
from .gala import gala_adjust_logits
from .generator import anchor_positions, generate_features, seeded_generators
from .schedules import SCHEDULES, check_schedule, schedule_value
from .statistics_builder import AllGather, StatisticsBuilder
from .tukey import check_tukey_lambda, tukey_transform
