_base_ = ['./ce_r32_cifar100lt_if100.py']

# ResNet-32 on CIFAR-100-LT, imbalance factor 200: the IF 100 config with the
# imbalance factor of the training set changed.
train_dataloader = dict(dataset=dict(imbalance_factor=200))
