# Your own long-tailed data, as it is on disk: a folder tree
#     data_root/train/<class name>/*.jpg     (classes: sorted folder names)
#     data_root/test/<class name>/*.jpg      (optional, a balanced test set)
# read with mmpretrain's CustomDataset. It is already long-tailed, so no
# LongTailDataset wrapper. Validation comes out of the training tree, class
# by class: PerClassSplit holds out a seeded tenth of every class (at least 2
# images, at most 50, never a class's last training image); training reads
# the rest, so the two never share an image and the class counts the losses
# use are those of the training part. Both stages read the same split (same
# arguments, same seed). Without a test tree, set test_dataloader = None,
# test_evaluator = None and test_cfg = None.
# RGB JPEG/PNG at ImageNet scale (mmpretrain's ImageNet pipelines). Grayscale
# images: dict(type='LoadImageFromFile', color_type='grayscale') in both
# pipelines, model.backbone.in_channels=1, and a one-value mean / std (the
# images' mean and standard deviation in 0..255).
_base_ = ['mmpretrain::_base_/datasets/imagenet_bs64.py']

data_root = 'data/my_dataset'
num_classes = 10  # the number of class folders under data_root/train

data_preprocessor = dict(num_classes=num_classes)

heldout = dict(
    type='PerClassSplit',
    fraction=0.1,
    min_per_class=2,
    max_per_class=50,
    seed=0)

train_dataloader = dict(
    batch_size=64,
    num_workers=4,
    dataset=dict(
        _delete_=True,
        **heldout,
        split='train',
        dataset=dict(
            type='CustomDataset',
            data_root=data_root,
            data_prefix='train',
            pipeline={{_base_.train_pipeline}})),
)
val_dataloader = dict(
    batch_size=64,
    num_workers=4,
    dataset=dict(
        _delete_=True,
        **heldout,
        split='heldout',
        dataset=dict(
            type='CustomDataset',
            data_root=data_root,
            data_prefix='train',
            pipeline={{_base_.test_pipeline}})),
)
val_evaluator = dict(_delete_=True, type='LongTailAccuracy')

test_dataloader = dict(
    batch_size=64,
    num_workers=4,
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root=data_root,
        data_prefix='test',
        pipeline={{_base_.test_pipeline}}),
)
test_evaluator = val_evaluator
