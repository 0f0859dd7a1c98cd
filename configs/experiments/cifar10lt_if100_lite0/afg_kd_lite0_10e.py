# GLAG's stage two: the Adaptive Feature Generator plus distillation from the
# linear probe (the stage-one model) on head classes. AFGHook gets the probe
# so that model.head.confidence_reference='stage_one' can be chosen by
# --cfg-options (the default, 'previous', does not read it).
_base_ = ['./afg_lite0_10e.py']
custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='StageOneCheckpointHook'),
    dict(type='AFGHook'),
    dict(type='GLAGDistillHook'),
]
