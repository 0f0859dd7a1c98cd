# Fashion-MNIST-LT for the demo: an exponential long-tailed subset of
# mmpretrain's FashionMNIST training set (IF 100: 6,000 to 60 per class,
# 14,886 images), in memory, no worker processes; the balanced 10,000-image
# test set for validation and test. 28x28 grayscale, no augmentation.
# mmpretrain's MNIST readers pick the test files by test_mode, not split.
data_root = 'data/fashion-mnist'

data_preprocessor = dict(
    num_classes=10, mean=[72.94], std=[90.02], to_rgb=False)

train_pipeline = [dict(type='PackInputs')]
test_pipeline = [dict(type='PackInputs')]

train_dataloader = dict(
    batch_size=128,
    num_workers=0,
    persistent_workers=False,  # no worker processes to keep
    dataset=dict(
        type='LongTailDataset',
        imbalance_factor=100,
        profile='exp',
        seed=0,
        dataset=dict(
            type='FashionMNIST',
            data_root=data_root,
            split='train',
            download=False,
            pipeline=train_pipeline)),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=500,
    num_workers=0,
    persistent_workers=False,  # no worker processes to keep
    dataset=dict(
        type='FashionMNIST',
        data_root=data_root,
        split='test',
        test_mode=True,
        download=False,
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='LongTailAccuracy')

test_dataloader = val_dataloader
test_evaluator = val_evaluator
