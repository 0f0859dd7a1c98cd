# ImageNet-LT (Liu et al. 2019): 1,000 classes, 115,846 training images
# (1,280 to 5 per class), the published split lists; validation on
# ImageNet_LT_val (20 per class), test on ImageNet_LT_test (50 per class).
# data_root: the ImageNet folder holding train/ and val/, with the lists in
# data_root/meta. Batch 512 = 8 GPUs x 64. Pipelines: mmpretrain's ImageNet.
# The Places-LT and iNaturalist 2018 bases inherit this one and change the
# dataset type, data_root and the three lists.
_base_ = ['mmpretrain::_base_/datasets/imagenet_bs64.py']

dataset_type = 'ImageNetLT'
data_root = 'data/imagenet'

train_dataloader = dict(
    batch_size=64,
    dataset=dict(
        _delete_=True,
        type=dataset_type,
        data_root=data_root,
        ann_file='meta/ImageNet_LT_train.txt',
        pipeline={{_base_.train_pipeline}},
    ),
)
val_dataloader = dict(
    batch_size=64,
    dataset=dict(
        _delete_=True,
        type=dataset_type,
        data_root=data_root,
        ann_file='meta/ImageNet_LT_val.txt',
        pipeline={{_base_.test_pipeline}},
    ),
)
val_evaluator = dict(_delete_=True, type='LongTailAccuracy')

test_dataloader = dict(
    batch_size=64,
    dataset=dict(
        _delete_=True,
        type=dataset_type,
        data_root=data_root,
        ann_file='meta/ImageNet_LT_test.txt',
        pipeline={{_base_.test_pipeline}},
    ),
)
test_evaluator = val_evaluator
