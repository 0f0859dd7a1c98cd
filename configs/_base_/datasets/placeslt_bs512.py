# Places-LT (Liu et al. 2019): 365 classes, 62,500 training images
# (4,980 to 5 per class), the published split lists; validation on
# Places_LT_val (20 per class), test on Places_LT_test (100 per class).
# data_root: the Places365 folder holding the images the lists name, with
# the lists in data_root/meta. Batch 512 = 8 GPUs x 64. Pipelines:
# mmpretrain's ImageNet ones.
_base_ = ['mmpretrain::_base_/datasets/imagenet_bs64.py']

dataset_type = 'PlacesLT'
data_root = 'data/places365'

train_dataloader = dict(
    batch_size=64,
    dataset=dict(
        _delete_=True,
        type=dataset_type,
        data_root=data_root,
        ann_file='meta/Places_LT_train.txt',
        pipeline={{_base_.train_pipeline}}),
)
val_dataloader = dict(
    batch_size=64,
    dataset=dict(
        _delete_=True,
        type=dataset_type,
        data_root=data_root,
        ann_file='meta/Places_LT_val.txt',
        pipeline={{_base_.test_pipeline}}),
)
val_evaluator = dict(_delete_=True, type='LongTailAccuracy')

test_dataloader = dict(
    batch_size=64,
    dataset=dict(
        _delete_=True,
        type=dataset_type,
        data_root=data_root,
        ann_file='meta/Places_LT_test.txt',
        pipeline={{_base_.test_pipeline}}),
)
test_evaluator = val_evaluator
