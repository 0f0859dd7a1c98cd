# ResNet-32 of the CIFAR long-tail literature (3 stages of 16/32/64 channels,
# 5 basic blocks each, about 0.46M parameters): glag_mm's CifarResNet, since
# mmpretrain's ResNet_CIFAR only has depths 18-152.
model = dict(
    type='ImageClassifier',
    backbone=dict(type='CifarResNet', depth=32),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=100,
        in_channels=64,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1,),
    ),
)
