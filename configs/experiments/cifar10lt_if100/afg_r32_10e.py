# The Adaptive Feature Generator alone (no distillation): the cRT config plus
# the head line and the AFG hook, options as configs/glag/afg_r32_cifar10lt_if100.py.
_base_ = ['../_base_/cifar10lt_if100_stage_two_10e.py']
model = dict(head=dict(type='AFGHead', tail_threshold=0.2, generation='ratio'))
custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='StageOneCheckpointHook'),
    dict(type='AFGHook'),
]
