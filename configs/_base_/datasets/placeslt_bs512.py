# Places-LT (Liu et al. 2019): 365 classes, 62,500 training images
# (4,980 to 5 per class), the published split lists; validation on
# Places_LT_val (20 per class), test on Places_LT_test (100 per class).
# data_root: the Places365 folder holding the images the lists name, with
# the lists in data_root/meta. Otherwise as imagenetlt_bs512.py (batch 512 =
# 8 GPUs x 64, mmpretrain's ImageNet pipelines).
_base_ = ['./imagenetlt_bs512.py']

dataset_type = 'PlacesLT'
data_root = 'data/places365'
__split = dict(type=dataset_type, data_root=data_root)

train_dataloader = dict(
    dataset=dict(__split, ann_file='meta/Places_LT_train.txt')
)
val_dataloader = dict(dataset=dict(__split, ann_file='meta/Places_LT_val.txt'))
test_dataloader = dict(
    dataset=dict(__split, ann_file='meta/Places_LT_test.txt')
)
