# Fashion-MNIST-LT for the demo: an exponential long-tailed subset of
# mmpretrain's FashionMNIST training set (IF 100: 6,000 to 60 per class,
# 14,886 images), in memory, no worker processes; the balanced 10,000-image
# test set for validation and test (configs that choose anything on the
# validation split use heldout_val_dataset instead, below). 28x28
# grayscale, no augmentation.
# mmpretrain's MNIST readers pick the test files by test_mode, not split.
data_root = 'data/fashion-mnist'

data_preprocessor = dict(
    num_classes=10, mean=[72.94], std=[90.02], to_rgb=False
)

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
            pipeline=train_pipeline,
        ),
    ),
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
        pipeline=test_pipeline,
    ),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='LongTailAccuracy')

test_dataloader = val_dataloader
test_evaluator = val_evaluator

# 100 held-out training images per class, beyond the long-tailed subset
# (LongTailDataset split='heldout'): a validation split that never touches
# the test set. A child config writes
#     val_dataloader = dict(dataset={{_base_.heldout_val_dataset}})
heldout_val_dataset = dict(
    _delete_=True,
    type='LongTailDataset',
    imbalance_factor=100,
    profile='exp',
    seed=0,
    split='heldout',
    heldout_per_class=100,
    dataset=dict(
        type='FashionMNIST',
        data_root=data_root,
        split='train',
        test_mode=False,
        download=False,
        pipeline=test_pipeline,
    ),
)
