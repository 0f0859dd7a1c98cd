_base_ = [
    '../_base_/models/resnet10.py',
    '../_base_/datasets/imagenetlt_bs512.py',
    '../_base_/schedules/imagenetlt_200e.py',
    '../_base_/default_runtime.py',
]

# ResNet-10 on ImageNet-LT from scratch: 200 epochs, batch 512 (8 x 64), lr
# 0.2.
model = dict(
    head=dict(
        num_classes=1000,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5),
    )
)
