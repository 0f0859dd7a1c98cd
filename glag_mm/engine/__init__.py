"""Hooks and loops: class counts, stage two's cached loops, distillation,
feature statistics and confidence."""

from ..runtime import count_dataset_labels
from . import runner_defaults
from .afg_hook import AFGHook
from .class_counts_hook import ClassCountsHook
from .distill_hook import GLAGDistillHook, LinearTeacher
from .nonfinite_hook import NonFiniteCheckHook, NonFiniteError
from .posthoc_tau_hook import PosthocTauHook
from .stage_one_hook import StageOneCheckpointHook
from .stage_two_loops import (
    StageTwoTestLoop,
    StageTwoTrainLoop,
    StageTwoValLoop,
    ValidateBeforeSaveLoop,
)

# Runners built by mmpretrain's own tools get ClassCountsHook when needed.
runner_defaults.install()
