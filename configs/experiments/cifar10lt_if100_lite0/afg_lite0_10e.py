# The Adaptive Feature Generator alone (no distillation): the cRT config plus
# the head line and the AFG hook. Tail: n_c < 0.2 n_max (1,000 images: the
# classes of 645 .. 50 images), as configs/glag; one generated feature per
# real one on the class-aware batches ('ratio').
_base_ = ['../_base_/cifar10lt_if100_lite0_stage_two_10e.py']
model = dict(head=dict(type='AFGHead', tail_threshold=0.2, generation='ratio'))
custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='StageOneCheckpointHook'),
    dict(type='AFGHook'),
]
