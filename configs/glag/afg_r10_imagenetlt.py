_base_ = ['./crt_r10_imagenetlt.py']

# GLAG stage two, ResNet-10 on ImageNet-LT: the cRT config plus the head line
# (Adaptive Feature Generator) and the hook line (statistics pass, adaptive
# confidence, distillation from the stage-one model); the README ("Using the
# plugin from your own mmpretrain config") says what they set.
model = dict(head=dict(type='AFGHead', generation='ratio'))
custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='StageOneCheckpointHook'),
    dict(type='AFGHook'),
    dict(type='GLAGDistillHook'),
]
