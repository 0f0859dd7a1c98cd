# CIFAR-10-LT (IF 100): the one-factor ablations of GLAG's stage two of
# experiments/cifar10lt_if100_ablation.py (the same 17 rows, the same
# shipped configs), on the seed-0 LA trunk of experiments/cifar10lt_if100.py
# (the fixed logit-adjusted loss, tau = 1 from the first step) instead of
# the GraLoss trunk: the same config and seed, retrained here (its record is
# compared with that spec's la seed 0 in docs/results.md).
#
#   bash tools/get_cifar10.sh data/cifar10        # the JPEG tree, once
#   python tools/run_experiments.py experiments/cifar10lt_if100_la_ablation.py
#   python tools/make_report.py results/cifar10lt_if100_la_ablation
#
# Every run keeps its final validation's per-image labels, so make_report's
# ablation.md compares every row with the defaults on the same 900
# validation images (paired bootstrap, 95 % interval). Screening runs seed 0
# of stage two; the defaults get stage-two seeds 1 and 2 on the same seed-0
# trunk. No default can change on this trunk alone (the other datasets
# already disagree), so the rows beyond the noise get no extra seeds.
import os.path as osp

from glag_tools.experiments.ablation_spec import ablation_runs
from glag_tools.experiments.spec import chosen_settings

_C = 'configs/experiments/cifar10lt_if100/'

title = 'CIFAR-10-LT (IF 100): GLAG stage-two ablations, LA trunk'
description = (
    'One-factor ablations of GLAG stage two (AFG + KD, 10 epochs on cached '
    'features) around the defaults of '
    'configs/experiments/cifar10lt_if100/afg_kd_r32_10e.py, on the seed-0 '
    "LA trunk (ResNet-32, 30 epochs, the first study's logit-adjusted "
    'loss, tau = 1); seed 0 screening, seeds 1 and 2 of stage two (same '
    'trunk) for the defaults. cRT uses the setting validation chose on the '
    'GraLoss trunk in the first study. Validation: 100 held-out training '
    'images per class (900: the largest class has none left); test: the '
    '10,000 test images. CIFAR-10-LT IF 100 has no few-shot class, so few is '
    'n/a.'
)
seeds = [0]
# stage-two seeds beyond 0
_MORE_SEEDS = {'defaults': [1, 2]}
# GraLoss + cRT's validation-chosen setting of the first study
# (experiments/cifar10lt_if100_selected.py's selection record, chosen on
# the GraLoss trunk), kept as is on the LA trunk
_CRT = chosen_settings(
    osp.join(osp.dirname(__file__), 'cifar10lt_if100_selected.py'), 'crt'
)
runs = ablation_runs(
    config_dir=_C,
    trunk=('la_r32_30e.py', 30),
    defaults='afg_kd_r32_10e.py',
    no_kd='afg_r32_10e.py',
    crt=('crt_r32_10e.py', _CRT),
    more_seeds=_MORE_SEEDS,
    stage_one=dict(name='la', label='LA'),
    # the val-selected GLAG row (experiments/selection/glag_stage_two_wide.py
    # on the seed-0 LA trunk; none where the selection kept the defaults)
    selected=chosen_settings(
        __file__, 'glag_wide', {'GLAGDistillHook': 3}, unless_defaults=True
    ),
)
