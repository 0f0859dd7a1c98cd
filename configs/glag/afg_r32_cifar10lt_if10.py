_base_ = ['./afg_r32_cifar10lt_if100.py']

# GLAG stage two, ResNet-32 on CIFAR-10-LT, imbalance factor 10: the IF 100
# config with the imbalance factor of the training set and of its held-out
# validation images changed.
train_dataloader = dict(dataset=dict(imbalance_factor=10))
val_dataloader = dict(dataset=dict(imbalance_factor=10))
