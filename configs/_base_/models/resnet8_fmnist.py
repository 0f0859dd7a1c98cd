# A small CIFAR-style ResNet for the Fashion-MNIST demo on a CPU: depth 8
# (one basic block per stage), stages of 8/16/32 channels, grayscale input,
# about 19k parameters.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='CifarResNet',
        depth=8,
        in_channels=1,
        stage_channels=(8, 16, 32)),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=32,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, ),
    ))
