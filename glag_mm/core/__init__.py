"""The method as pure PyTorch (no OpenMMLab imports)."""

from .calibration import (
    GENERATION_MODES,
    WEIGHTINGS,
    anchor_support,
    calibrated_mean,
    calibrated_sample,
    donor_candidates,
    donor_weights,
    generate_features,
    generation_plan,
    num_donors,
    support_sets,
    tail_classes,
)
from .checks import check_integer, check_number
from .class_counts import check_class_counts, log_prior
from .distill import distillation_loss
from .fbl import (
    CURRICULA,
    authors_curriculum,
    fbl_adjust_logits,
    fbl_class_strength,
)
from .feature_bank import AllGather, ClassFeatureBank
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
from .tukey import check_tukey_lambda, tukey_transform

__all__ = [
    'SCHEDULES',
    'check_schedule',
    'schedule_value',
    'check_number',
    'check_integer',
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
    'tukey_transform',
    'check_tukey_lambda',
    'ClassFeatureBank',
    'AllGather',
    'tail_classes',
    'donor_candidates',
    'num_donors',
    'support_sets',
    'donor_weights',
    'calibrated_mean',
    'calibrated_sample',
    'anchor_support',
    'generate_features',
    'generation_plan',
    'WEIGHTINGS',
    'GENERATION_MODES',
    'distillation_loss',
]
