# GLAG's stage two: the Adaptive Feature Generator plus distillation from the
# stage-one model on head classes. AFGHook gets the stage-one checkpoint so
# that model.head.confidence_reference='stage_one' can be chosen by
# --cfg-options (the default, 'previous', does not read it).
_base_ = ['./afg_r32_10e.py']
custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='StageOneCheckpointHook'),
    dict(type='AFGHook'),
    dict(type='GLAGDistillHook'),
]
