_base_ = ['./crt_r32_cifar10lt_if100.py']

# cRT (Kang et al. 2020) stage two, ResNet-32 on CIFAR-10-LT, imbalance factor
# 10: the IF 100 config with the imbalance factor of the training set and of
# its held-out validation images changed.
train_dataloader = dict(dataset=dict(imbalance_factor=10))
val_dataloader = dict(dataset=dict(imbalance_factor=10))
