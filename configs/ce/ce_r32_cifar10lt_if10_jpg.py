_base_ = ['./ce_r32_cifar10lt_if100_jpg.py']

# ResNet-32 on CIFAR-10-LT (JPEG folder copy), imbalance factor 10: the IF 100
# config with the imbalance factor of the training set changed.
train_dataloader = dict(dataset=dict(imbalance_factor=10))
