_base_ = [
    '../_base_/models/resnet32_cifar.py',
    './_base_/folder_lt_32px.py',
    './_base_/stage_one_90e.py',
    '../_base_/default_runtime.py',
]

# Stage one on your own small images (about 64 pixels or fewer; see
# _base_/folder_lt.py for sizing and for pointing it at your data from your
# own config): 32-pixel input, CIFAR ResNet-20 (16/32/64 channels, 0.27 M
# parameters) from scratch with the Gradual Balanced Loss, 90 epochs.
model = dict(
    backbone=dict(depth=20),
    head=dict(
        num_classes={{_base_.num_classes}},
        loss=dict(
            type='GradualBalancedLoss',
            num_classes={{_base_.num_classes}},
            loss_weight=1.0,
        ),
        topk=(1,),
    ),
)
randomness = dict(seed=0)
