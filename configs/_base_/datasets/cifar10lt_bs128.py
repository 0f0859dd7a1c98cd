# CIFAR-10-LT: an exponential long-tailed subset of mmpretrain's CIFAR10
# training set, n_i = floor(5000 * IF^(-i/9)), seeded; the balanced test set
# for validation and test, as the long-tail literature. Batch 128 (one GPU).
# Augmentation: random crop with 4-pixel padding and horizontal flip.
_base_ = ['mmpretrain::_base_/datasets/cifar10_bs16.py']

train_dataloader = dict(
    batch_size=128,
    num_workers=2,
    dataset=dict(
        _delete_=True,
        type='LongTailDataset',
        imbalance_factor=100,
        profile='exp',
        seed=0,
        dataset=dict(
            type='CIFAR10',
            data_root='data/cifar10',
            split='train',
            pipeline={{_base_.train_pipeline}},
        ),
    ),
)

val_dataloader = dict(batch_size=256, num_workers=2)
val_evaluator = dict(_delete_=True, type='LongTailAccuracy')

test_dataloader = val_dataloader
test_evaluator = val_evaluator
