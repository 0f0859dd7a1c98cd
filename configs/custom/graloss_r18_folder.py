_base_ = [
    'mmpretrain::_base_/models/resnet18.py',
    './_base_/folder_lt.py',
    './_base_/stage_one_90e.py',
    '../_base_/default_runtime.py',
]

# Stage one on your own long-tailed folder tree (_base_/folder_lt.py: how to
# point it at your data, and the input size): ResNet-18 from scratch
# with the Gradual Balanced Loss, 90 epochs. For the CE baseline, the loss
# line is dict(type='CrossEntropyLoss', loss_weight=1.0).
model = dict(
    head=dict(
        num_classes={{_base_.num_classes}},
        loss=dict(
            type='GradualBalancedLoss',
            num_classes={{_base_.num_classes}},
            loss_weight=1.0,
        ),
        topk=(1,),
    )
)
randomness = dict(seed=0)
