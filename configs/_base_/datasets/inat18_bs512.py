# iNaturalist 2018: 8,142 classes, 437,513 training images (1,000 to 2 per
# class), the split lists of the long-tail literature (its val set, 24,426
# images, is the test set). data_root: the folder holding train_val2018/,
# with the lists in data_root/meta (the official train2018.json /
# val2018.json also work as ann_file). Otherwise as imagenetlt_bs512.py
# (batch 512 = 8 GPUs x 64, mmpretrain's ImageNet pipelines).
_base_ = ['./imagenetlt_bs512.py']

dataset_type = 'INaturalist2018'
data_root = 'data/inat2018'
__split = dict(type=dataset_type, data_root=data_root)

train_dataloader = dict(
    dataset=dict(__split, ann_file='meta/iNaturalist18_train.txt')
)
val_dataloader = dict(
    dataset=dict(__split, ann_file='meta/iNaturalist18_val.txt')
)
test_dataloader = val_dataloader
