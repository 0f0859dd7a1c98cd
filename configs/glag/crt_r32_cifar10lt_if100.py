_base_ = [
    '../_base_/models/resnet32_cifar.py',
    '../_base_/datasets/cifar10lt_bs128.py',
    './_base_/stage_two_40e_bs128.py',
    '../_base_/default_runtime.py',
]

# cRT (Kang et al. 2020) stage two, ResNet-32 on CIFAR-10-LT, imbalance factor
# 100: the stage-one trunk, frozen (_base_/stage_two_40e_bs512.py).
train_dataloader = dict(
    dataset=dict(
        imbalance_factor=100, dataset=dict(pipeline={{_base_.test_pipeline}})
    ),
    sampler=dict(type='ClassAwareSampler'),
)
model = dict(type='StageTwoClassifier', head=dict(num_classes=10))

# Validation: images of the training split that the long-tailed subset left out
# (100 per class), never the test set: the adaptive confidence of AFG learns
# from it. The test set stays the test set.
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='LongTailDataset',
        imbalance_factor=100,
        seed=0,
        split='heldout',
        heldout_per_class=100,
        dataset=dict(
            type='CIFAR10',
            data_root='data/cifar10',
            split='train',
            pipeline={{_base_.test_pipeline}},
        ),
    )
)

custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='StageOneCheckpointHook'),
]
