"""The method as pure PyTorch (no OpenMMLab imports)."""

from .class_counts import check_class_counts, log_prior
from .fbl import (
    CURRICULA,
    authors_curriculum,
    fbl_adjust_logits,
    fbl_class_strength,
)
from .gala import (
    PHI_MODES,
    all_reduce_sum,
    gala_adjust_logits,
    gala_increments,
    update_running_statistic,
)
from .logit_adjustment import (
    adjust_logits,
    cross_entropy_per_sample,
    logit_adjusted_cross_entropy,
    weight_reduce,
)
from .schedules import SCHEDULES, check_schedule, schedule_value

__all__ = [
    'SCHEDULES',
    'check_schedule',
    'schedule_value',
    'check_class_counts',
    'log_prior',
    'adjust_logits',
    'cross_entropy_per_sample',
    'logit_adjusted_cross_entropy',
    'weight_reduce',
    'PHI_MODES',
    'all_reduce_sum',
    'gala_adjust_logits',
    'gala_increments',
    'update_running_statistic',
    'CURRICULA',
    'authors_curriculum',
    'fbl_adjust_logits',
    'fbl_class_strength',
]
