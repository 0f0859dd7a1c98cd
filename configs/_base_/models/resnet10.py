# ResNet-10 of the decoupling paper (Kang et al. 2020) on ImageNet-LT: a
# ResNet with one basic block per stage (512-d features), from scratch.
# mmpretrain's ResNet has no depth 10; glag_mm registers ResNet10.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='ResNet10',
        depth=10,
        num_stages=4,
        out_indices=(3,),
        style='pytorch',
    ),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=512,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5),
    ),
)
