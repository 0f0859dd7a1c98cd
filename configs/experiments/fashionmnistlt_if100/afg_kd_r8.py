# GLAG's stage two: the Adaptive Feature Generator plus distillation from the
# stage-one model on head classes.
_base_ = ['./afg_r8.py']
custom_hooks = [dict(type='ClassCountsHook'), dict(type='FeatureCacheHook'), dict(type='AFGHook'), dict(type='GLAGDistillHook', checkpoint='{stage_one_checkpoint}')]
