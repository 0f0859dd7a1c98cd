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
# RGB JPEG/PNG at ImageNet scale (mmpretrain's ImageNet pipelines: random
# 224-pixel crops for training, 256 then a 224 centre crop for testing).
#
# Sizing the input and the model: the cost of an image grows with its
# pixels, and a 224-pixel ResNet-18 costs about 1.8 GFLOPs an image whatever
# the source size (small images are upscaled to 224). Photos of 100 pixels
# or more: this file and the *_r18_folder.py recipes. Images of about 64
# pixels or fewer (CIFAR-, MNIST-like): _base_/folder_lt_32px.py and the
# *_r20_folder_32px.py recipes (32-pixel input, CIFAR ResNet-20, about 40
# MFLOPs an image). Grayscale images: dict(type='LoadImageFromFile',
# color_type='grayscale') in the pipelines, model.backbone.in_channels=1 and
# a one-value mean / std in data_preprocessor (the images' mean and standard
# deviation in 0..255).
#
# Your data, from your own config file (never edit this project): inherit a
# recipe by its path and override the keys below. mmengine fills
# {{_base_.data_root}} in when this file is read, so a top-level
# data_root = ... in your file does not reach the datasets by itself:
#
#     _base_ = ['/path/to/glag_mm/configs/custom/graloss_r18_folder.py']
#     data_root = '/data/my_dataset'
#     num_classes = 5
#     train_dataloader = dict(dataset=dict(dataset=dict(data_root=data_root)))
#     val_dataloader = dict(dataset=dict(dataset=dict(data_root=data_root)))
#     test_dataloader = dict(dataset=dict(data_root=data_root))
#     data_preprocessor = dict(num_classes=num_classes)
#     model = dict(head=dict(num_classes=num_classes,
#                            loss=dict(num_classes=num_classes)))
#
# (a stage-two recipe, afg_*: the head line without loss=...). Both stages
# in one command: your own top-level file naming your two stage files,
#     stages = [dict(name='stage1', config='my_stage_one.py'),
#               dict(name='stage2', config='my_stage_two.py',
#                    init_from='stage1')]
# (paths relative to that file), as glag_r18_folder.py does.
_base_ = ['mmpretrain::_base_/datasets/imagenet_bs64.py']

data_root = 'data/my_dataset'
num_classes = 10  # the number of class folders under data_root/train

data_preprocessor = dict(num_classes=num_classes)

heldout = dict(
    type='PerClassSplit',
    fraction=0.1,
    min_per_class=2,
    max_per_class=50,
    seed=0,
)

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
            pipeline={{_base_.train_pipeline}},
        ),
    ),
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
            pipeline={{_base_.test_pipeline}},
        ),
    ),
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
        pipeline={{_base_.test_pipeline}},
    ),
)
test_evaluator = val_evaluator
