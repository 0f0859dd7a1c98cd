_base_ = [
    '../_base_/models/resnet32_cifar.py',
    '../_base_/datasets/cifar100lt_bs128.py',
    './_base_/stage_two_40e_bs128.py',
    '../_base_/default_runtime.py',
]

# cRT (Kang et al. 2020) stage two, ResNet-32 on CIFAR-100-LT, imbalance factor
# 50: the stage-one trunk, frozen (frozen_stages, norm_eval) and loaded from
# the stage-one checkpoint ('{stage_one_checkpoint}', filled in by
# tools/train.py); a re-initialised linear classifier trained on class-aware
# (class-balanced) batches. No augmentation on the frozen trunk [ours], so its
# features are computed once (FeatureCacheHook) and the 40 epochs run on the
# cache.
train_dataloader = dict(
    dataset=dict(
        imbalance_factor=50,
        dataset=dict(pipeline={{_base_.test_pipeline}})),
    sampler=dict(type='ClassAwareSampler'))
model = dict(
    backbone=dict(
        frozen_stages=3,
        norm_eval=True,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='{stage_one_checkpoint}',
            prefix='backbone.')),
    head=dict(num_classes=100))

# Validation: images of the training split that the long-tailed subset left out
# (20 per class), never the test set: the adaptive confidence of AFG learns
# from it. The test set stays the test set.
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='LongTailDataset',
        imbalance_factor=50,
        seed=0,
        split='heldout',
        heldout_per_class=20,
        dataset=dict(
            type='CIFAR100',
            data_root='data/cifar100',
            split='train',
            pipeline={{_base_.test_pipeline}})))

custom_hooks = [dict(type='ClassCountsHook'), dict(type='FeatureCacheHook')]
