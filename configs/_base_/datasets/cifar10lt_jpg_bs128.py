# CIFAR-10-LT from the CIFAR-10 JPEG folder tree (train/<class>/*.jpg,
# test/<class>/*.jpg; sorted folder names give CIFAR-10's label order), read
# with mmpretrain's CustomDataset: for copies of CIFAR-10 that are not the
# official pickles. Otherwise as cifar10lt_bs128.py.
_base_ = ['./cifar10lt_bs128.py']

data_preprocessor = dict(to_rgb=True)  # cv2 decodes JPEG as BGR

dataset_type = 'CustomDataset'
data_root = 'data/cifar10-jpg'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    dataset=dict(
        dataset=dict(
            _delete_=True,
            type='CustomDataset',
            data_root=data_root,
            data_prefix='train',
            pipeline=train_pipeline,
        )
    )
)
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root=data_root,
        data_prefix='test',
        pipeline=test_pipeline,
    )
)
test_dataloader = val_dataloader
