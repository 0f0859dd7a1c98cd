# The folder tree of folder_lt.py (its header says how to point a recipe at
# your data) for small images: every image resized to 32 x 32 pixels, random
# 32-pixel crops of the image padded by 4 and horizontal flips for training
# (the CIFAR recipe), batches of 128. Resize to 28 instead for 28-pixel
# images (scale=(28, 28), crop_size=28): a CIFAR ResNet takes any size.
_base_ = ['./folder_lt.py']

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(32, 32)),
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(32, 32)),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=128,
    num_workers=2,
    dataset=dict(dataset=dict(pipeline=train_pipeline)),
)
val_dataloader = dict(
    batch_size=256,
    num_workers=2,
    dataset=dict(dataset=dict(pipeline=test_pipeline)),
)
test_dataloader = dict(
    batch_size=256, num_workers=2, dataset=dict(pipeline=test_pipeline)
)
