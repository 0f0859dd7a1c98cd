# One-factor ablation of GLAG's stage two
# (experiments/cifar10lt_if100_lite0_ablation.py): afg_kd_lite0_10e.py with KD
# temperature T = 4 instead of 1 only (custom_hooks restated: a list replaces
# the base's whole).
_base_ = ['../afg_kd_lite0_10e.py']
custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='StageOneCheckpointHook'),
    dict(type='AFGHook'),
    dict(
        type='GLAGDistillHook',
        temperature=4.0,
    ),
]
