# iNaturalist 2018: 8,142 classes, 437,513 training images (1,000 to 2 per
# class), the split lists of the long-tail literature (its val set, 24,426
# images, is the test set). data_root: the folder holding train_val2018/,
# with the lists in data_root/meta (the official train2018.json /
# val2018.json also work as ann_file). Batch 512 = 8 GPUs x 64.
# Pipelines: mmpretrain's ImageNet ones.
_base_ = ['mmpretrain::_base_/datasets/imagenet_bs64.py']

dataset_type = 'INaturalist2018'
data_root = 'data/inat2018'

train_dataloader = dict(
    batch_size=64,
    dataset=dict(
        _delete_=True,
        type=dataset_type,
        data_root=data_root,
        ann_file='meta/iNaturalist18_train.txt',
        pipeline={{_base_.train_pipeline}}),
)
val_dataloader = dict(
    batch_size=64,
    dataset=dict(
        _delete_=True,
        type=dataset_type,
        data_root=data_root,
        ann_file='meta/iNaturalist18_val.txt',
        pipeline={{_base_.test_pipeline}}),
)
val_evaluator = dict(_delete_=True, type='LongTailAccuracy')

test_dataloader = val_dataloader
test_evaluator = val_evaluator
