_base_ = [
    '../_base_/models/resnet32_cifar.py',
    '../_base_/datasets/cifar10lt_bs128.py',
    '../_base_/schedules/cifar_lt_200e.py',
    '../_base_/default_runtime.py',
]

# ResNet-32 on CIFAR-10-LT, imbalance factor 100: 200 epochs, batch 128, lr
# 0.1.
train_dataloader = dict(dataset=dict(imbalance_factor=100))
model = dict(
    head=dict(
        num_classes=10,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
    )
)
