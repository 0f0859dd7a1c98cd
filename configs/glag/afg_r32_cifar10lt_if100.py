_base_ = ['./crt_r32_cifar10lt_if100.py']

# GLAG stage two, ResNet-32 on CIFAR-10-LT, imbalance factor 100: the cRT
# config plus the head line (Adaptive Feature Generator) and the hook line
# (statistics pass, adaptive confidence, distillation from the stage-one
# model); the README ("Using the plugin from your own mmpretrain config")
# says what they set.
# CIFAR-10-LT has few classes below the many-shot threshold (100), so the
# tail is every class below a fifth of n_max (1,000 images) [ours].
model = dict(head=dict(type='AFGHead', tail_threshold=0.2, generation='ratio'))
custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='StageOneCheckpointHook'),
    dict(type='AFGHook'),
    dict(type='GLAGDistillHook'),
]
