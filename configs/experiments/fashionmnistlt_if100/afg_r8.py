# The Adaptive Feature Generator alone (no distillation): the cRT config plus
# the head line and the AFG hook, options as configs/demo/glag_r8_fmnistlt.py
# (tail: fewer than a fifth of n_max, i.e. the six classes of 774 images or
# fewer; 'ratio' generation on cRT's class-aware batches).
_base_ = ['./_base_/stage_two_r8.py']
model = dict(head=dict(type='AFGHead', tail_threshold=0.2, generation='ratio'))
custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='StageOneCheckpointHook'),
    dict(type='AFGHook'),
]
