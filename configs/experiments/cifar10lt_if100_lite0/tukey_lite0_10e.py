# Ablation: Tukey's transform alone. AFGHead with nothing generated
# (generation_ratio=0): a linear classifier on f ** 0.5, trained and tested
# in that space, otherwise the cRT setting.
_base_ = ['../_base_/cifar10lt_if100_lite0_stage_two_10e.py']
model = dict(
    head=dict(
        type='AFGHead',
        tail_threshold=0.2,
        generation='ratio',
        generation_ratio=0.0,
    )
)
custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='StageOneCheckpointHook'),
    dict(type='AFGHook'),
]
