_base_ = ['./afg_r32_cifar100lt_if100.py']

# GLAG stage two, ResNet-32 on CIFAR-100-LT, imbalance factor 200: the IF 100
# config with the imbalance factor of the training set and of its held-out
# validation images changed.
train_dataloader = dict(dataset=dict(imbalance_factor=200))
val_dataloader = dict(dataset=dict(imbalance_factor=200))
