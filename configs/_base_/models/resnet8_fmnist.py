# A small CIFAR-style ResNet for the Fashion-MNIST demo on a CPU: the
# ResNet-32 base at depth 8 (one basic block per stage), stages of 8/16/32
# channels, grayscale input, 10 classes; about 19k parameters.
_base_ = ['./resnet32_cifar.py']

model = dict(
    backbone=dict(depth=8, in_channels=1, stage_channels=(8, 16, 32)),
    head=dict(num_classes=10, in_channels=32),
)
