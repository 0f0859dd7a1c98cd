_base_ = ['./crt_r32_cifar10lt_if100.py']

# cRT (Kang et al. 2020) stage two, ResNet-32 on CIFAR-100-LT, imbalance factor
# 100: the CIFAR-10-LT config (frozen stage-one trunk from
# stage_one_checkpoint, re-initialised classifier on class-aware batches,
# features cached once, held-out validation) with mmpretrain's CIFAR-100
# dataset and normalisation, 100 classes and 20 held-out images per class.
dataset_type = 'CIFAR100'
data_preprocessor = dict(
    num_classes=100,
    mean=[129.304, 124.070, 112.434],
    std=[68.170, 65.392, 70.418],
)
__cifar100 = dict(type=dataset_type, data_root='data/cifar100')
train_dataloader = dict(dataset=dict(dataset=__cifar100))
val_dataloader = dict(dataset=dict(heldout_per_class=20, dataset=__cifar100))
test_dataloader = dict(
    dataset=dict(type=dataset_type, data_root='data/cifar100/')
)
model = dict(head=dict(num_classes=100))
