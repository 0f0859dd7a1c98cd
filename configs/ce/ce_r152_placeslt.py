_base_ = [
    'mmpretrain::_base_/models/resnet152.py',
    '../_base_/datasets/placeslt_bs512.py',
    '../_base_/schedules/placeslt_30e.py',
    '../_base_/default_runtime.py',
]

# ResNet-152 on Places-LT, initialised from mmpretrain's ImageNet ResNet-152
# as the decoupling / OLTR literature: 30 epochs, batch 512 (8 x 64).
model = dict(
    backbone=dict(
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmclassification/v0/'
            'resnet/resnet152_8xb32_in1k_20210901-4d7582fa.pth',
            prefix='backbone',
        )
    ),
    head=dict(
        num_classes=365,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5),
    ),
)
