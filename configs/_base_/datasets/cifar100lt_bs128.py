# CIFAR-100-LT: an exponential long-tailed subset of mmpretrain's CIFAR100
# training set, n_i = floor(500 * IF^(-i/99)), seeded; the balanced test set
# for validation and test, as the long-tail literature. The CIFAR-10-LT base
# (batch 128, random crop with 4-pixel padding and horizontal flip) with
# mmpretrain's CIFAR-100 dataset and normalisation in place of CIFAR-10's.
_base_ = ['./cifar10lt_bs128.py']

dataset_type = 'CIFAR100'
data_preprocessor = dict(
    num_classes=100,
    mean=[129.304, 124.070, 112.434],
    std=[68.170, 65.392, 70.418],
)

train_dataloader = dict(
    dataset=dict(dataset=dict(type=dataset_type, data_root='data/cifar100'))
)
val_dataloader = dict(
    dataset=dict(type=dataset_type, data_root='data/cifar100/')
)
test_dataloader = val_dataloader
