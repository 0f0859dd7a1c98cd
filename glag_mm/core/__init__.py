"""The method as pure PyTorch (no OpenMMLab imports)."""

from .class_counts import check_class_counts, log_prior
from .schedules import SCHEDULES, check_schedule, schedule_value

__all__ = [
    'SCHEDULES',
    'check_schedule',
    'schedule_value',
    'check_class_counts',
    'log_prior',
]
