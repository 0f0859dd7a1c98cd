# GLAG's stage two: the Adaptive Feature Generator plus distillation from the
# linear probe (the stage-one model) on head classes.
_base_ = ['./afg_lite0_10e.py']
custom_hooks = [dict(type='ClassCountsHook'), {{_base_.feature_cache}}, dict(type='AFGHook'), dict(type='GLAGDistillHook', checkpoint='{stage_one_checkpoint}')]
