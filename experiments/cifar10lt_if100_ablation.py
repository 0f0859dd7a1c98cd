# CIFAR-10-LT (IF 100): one-factor ablations of GLAG's stage two around its
# defaults (the six suspects of the second study), on the seed-0 GraLoss
# trunk of experiments/cifar10lt_if100.py: the same config and seed,
# retrained here (its record is compared with that spec's graloss seed 0 in
# docs/results.md).
#
#   bash tools/get_cifar10.sh data/cifar10        # the JPEG tree, once
#   python tools/run_experiments.py experiments/cifar10lt_if100_ablation.py
#   python tools/make_report.py results/cifar10lt_if100_ablation
#
# Every row is a shipped config, configs/experiments/cifar10lt_if100/
# ablation/<name>.py: afg_kd_r32_10e.py (GLAG's defaults) with one knob
# changed, 10 stage-two epochs as the first study's rows. Each run keeps its
# final validation's per-image labels (val_evaluator.samples_file in its
# work_dir; the record holds them), so make_report's ablation.md compares
# every row with the defaults on the same 900 validation images (paired
# bootstrap, 95 % interval): a row is beyond the noise only where the whole
# interval lies on one side of zero. Decisions read validation only; the
# test columns are reported beside them.
#
# Screening runs seed 0 of stage two; the defaults and the rows beyond the
# noise on validation get stage-two seeds 1 and 2 on the same seed-0 trunk
# (stage_one_seed=0), so their spread is stage two's own.
import os.path as osp

from glag_tools.experiments.ablation_spec import ablation_runs
from glag_tools.experiments.spec import chosen_settings

_C = 'configs/experiments/cifar10lt_if100/'

title = 'CIFAR-10-LT (IF 100): GLAG stage-two ablations, GraLoss trunk'
description = (
    'One-factor ablations of GLAG stage two (AFG + KD, 10 epochs on cached '
    'features) around the defaults of '
    'configs/experiments/cifar10lt_if100/afg_kd_r32_10e.py, on the seed-0 '
    "GraLoss trunk (ResNet-32, 30 epochs, the first study's); seed 0 "
    'screening, seeds 1 and 2 of stage two (same trunk) for the defaults and '
    'the rows beyond the validation noise. Validation: 100 held-out training '
    'images per class (900: the largest class has none left); test: the '
    '10,000 test images. CIFAR-10-LT IF 100 has no few-shot class, so few is '
    'n/a.'
)
seeds = [0]
# stage-two seeds beyond 0 (the defaults' and, after screening, those of the
# rows beyond the validation noise)
_MORE_SEEDS = {
    'defaults': [1, 2],
    'donors_2': [1, 2],
    'teacher_tau1': [1, 2],
}
# GraLoss + cRT with the validation-chosen setting of the first study
# (experiments/cifar10lt_if100_selected.py's selection record)
_CRT = chosen_settings(
    osp.join(osp.dirname(__file__), 'cifar10lt_if100_selected.py'), 'crt'
)
runs = ablation_runs(
    config_dir=_C,
    trunk=('graloss_r32_30e.py', 30),
    defaults='afg_kd_r32_10e.py',
    no_kd='afg_r32_10e.py',
    crt=('crt_r32_10e.py', _CRT),
    more_seeds=_MORE_SEEDS,
    # the val-selected GLAG row (experiments/selection/glag_stage_two_wide.py
    # on the seed-0 trunk; none where the selection kept the defaults)
    selected=chosen_settings(
        __file__, 'glag_wide', {'GLAGDistillHook': 3}, unless_defaults=True
    ),
)
