_base_ = ['./crt_r32_cifar100lt_if10.py']

# GLAG stage two, ResNet-32 on CIFAR-100-LT, imbalance factor 10: the cRT
# config plus the head line (Adaptive Feature Generator) and the hook line
# (statistics pass, adaptive confidence, distillation from the stage-one
# model). Generation mode 'ratio': cRT's class-aware sampler is kept, so real
# batches are already class-balanced and each real feature brings one generated
# feature of its class (METHOD.md stage two item 7). GLAG's own setting,
# instance-balanced real batches with every class topped up to n_max, is
# generation='balance' with train_dataloader.sampler =
# dict(type='DefaultSampler', shuffle=True). Every other AFGHead /
# GLAGDistillHook option is at its METHOD.md default.
model = dict(head=dict(type='AFGHead', generation='ratio'))

custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='FeatureCacheHook'),
    dict(type='AFGHook'),
    dict(type='GLAGDistillHook', checkpoint='{stage_one_checkpoint}'),
]
