# ResNet-32 on CIFAR-10-LT (IF 100) from the CIFAR-10 JPEG tree, on the
# shortened schedule that fits a 2-core CPU machine: 30 epochs (linear warm-up
# over 2 epochs from lr / 5, then cosine to 0), batch 128, lr 0.1, SGD
# momentum 0.9, wd 5e-4. Validation uses images the long-tailed subset left
# out (100 per class; the largest class has none left), never the test set;
# the test set (10,000 images) is only used for the reported figures.
_base_ = ['../../ce/ce_r32_cifar10lt_if100_jpg.py']

data_root = 'data/cifar10'
train_dataloader = dict(
    num_workers=1,
    dataset=dict(dataset=dict(data_root=data_root)),
)
val_dataloader = dict(
    num_workers=1,
    dataset=dict(
        _delete_=True,
        type='LongTailDataset',
        imbalance_factor=100,
        seed=0,
        split='heldout',
        heldout_per_class=100,
        dataset=dict(
            type='CustomDataset',
            data_root=data_root,
            data_prefix='train',
            pipeline={{_base_.test_pipeline}},
        ),
    ),
)
test_dataloader = dict(
    num_workers=1,
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root=data_root,
        data_prefix='test',
        pipeline={{_base_.test_pipeline}},
    ),
)

train_cfg = dict(max_epochs=30, val_interval=5)
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.2,
        by_epoch=True,
        begin=0,
        end=2,
        convert_to_iter_based=True,
    ),
    dict(
        type='CosineAnnealingLR',
        T_max=28,
        eta_min=0.0,
        by_epoch=True,
        begin=2,
        end=30,
        convert_to_iter_based=True,
    ),
]
default_hooks = dict(checkpoint=dict(interval=5, max_keep_ckpts=1))

# Every run also reports GALA's transductive prediction re-balancing
# (tau = 1 on CIFAR) beside the plain figures ('lt/*_rebalanced').
test_evaluator = dict(type='LongTailAccuracy', rebalance_tau=1.0)
