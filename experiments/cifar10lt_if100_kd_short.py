# CIFAR-10-LT (IF 100): GLAG's KD variants on a short stage one. The KD rows
# of experiments/cifar10lt_if100_ablation.py (the same shipped configs) on a
# 10-epoch GraLoss trunk (graloss_r32_10e.py, seed 0) instead of the 30-epoch
# one, so that every KD variant's rarest-class and medium accuracy can be
# read on a short and a long stage one (docs/results.md, "KD and the length
# of stage one").
#
#   bash tools/get_cifar10.sh data/cifar10        # the JPEG tree, once
#   python tools/run_experiments.py experiments/cifar10lt_if100_kd_short.py
#   python tools/make_report.py results/cifar10lt_if100_kd_short
#
# Each row is compared with the defaults on the same 900 validation images
# (paired bootstrap, 95 % interval, make_report's ablation.md). Seed 0 of
# stage two for every row; seeds 1 and 2 for the defaults and AFG without
# KD, on the same seed-0 trunk.
from glag_tools.experiments.ablation_spec import ablation_runs

_C = 'configs/experiments/cifar10lt_if100/'

title = 'CIFAR-10-LT (IF 100): GLAG KD variants on a 10-epoch GraLoss trunk'
description = (
    'The KD rows of the GLAG stage-two ablation (AFG + KD, 10 epochs on '
    'cached features, around configs/experiments/cifar10lt_if100/'
    'afg_kd_r32_10e.py) on the seed-0 GraLoss trunk trained for 10 epochs '
    '(ResNet-32, 1 warm-up epoch, cosine) instead of 30; seed 0 for every '
    'row, seeds 1 and 2 of stage two (same trunk) for the defaults and AFG '
    'without KD. Validation: 100 held-out training images per class (900: '
    'the largest class has none left); test: the 10,000 test images. '
    'CIFAR-10-LT IF 100 has no few-shot class, so few is n/a.'
)
seeds = [0]
runs = ablation_runs(
    config_dir=_C,
    trunk=('graloss_r32_10e.py', 10),
    defaults='afg_kd_r32_10e.py',
    no_kd='afg_r32_10e.py',
    crt=None,
    more_seeds={'defaults': [1, 2], 'no_kd': [1, 2]},
    rows=['kd_head', 'teacher_tau1', 'kd_t2', 'kd_t4'],
)
