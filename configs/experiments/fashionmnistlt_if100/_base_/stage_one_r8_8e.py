# Stage one of the Fashion-MNIST-LT (IF 100) experiments: the demo's setting
# (configs/demo/ce_r8_fmnistlt.py: ResNet-8 with 8/16/32 channels, 8 epochs,
# cosine, batch 128, lr 0.1, no augmentation) plus validation every 2 epochs
# on 100 images per class of the Fashion-MNIST training files that the
# long-tailed subset left out (the largest class, kept whole, has none),
# never the test set. The balanced 10,000-image test set gives the reported
# figures, with GALA's transductive re-balancing (tau = 1) beside the plain
# ones ('lt/*_rebalanced'). mmpretrain 1.2's FashionMNIST reads the test
# files when test_mode=True, so the held-out set sets it False.
_base_ = ['../../../demo/ce_r8_fmnistlt.py']

val_dataloader = dict(
    _delete_=True,
    batch_size=500,
    num_workers=0,
    persistent_workers=False,  # no worker processes to keep
    dataset=dict(
        type='LongTailDataset',
        imbalance_factor=100,
        profile='exp',
        seed=0,
        split='heldout',
        heldout_per_class=100,
        dataset=dict(
            type='FashionMNIST',
            data_root={{_base_.data_root}},
            split='train',
            test_mode=False,
            download=False,
            pipeline={{_base_.test_pipeline}},
        ),
    ),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_cfg = dict(_delete_=True)
val_evaluator = dict(_delete_=True, type='LongTailAccuracy')
test_evaluator = dict(type='LongTailAccuracy', rebalance_tau=1.0)

train_cfg = dict(val_begin=1, val_interval=2)
