_base_ = [
    'mmpretrain::_base_/models/resnet50.py',
    '../_base_/datasets/inat18_bs512.py',
    '../_base_/schedules/inat18_90e.py',
    '../_base_/default_runtime.py',
]

# ResNet-50 on iNaturalist 2018: 90 epochs, batch 512 (8 x 64), lr 0.2.
# The paper starts from self-supervised (SSP) weights, which glag_mm does not
# ship; to do the same, add to model.backbone
#     init_cfg=dict(type='Pretrained', checkpoint=PATH, prefix='backbone')
# (from scratch otherwise).
model = dict(
    head=dict(
        num_classes=8142,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5),
    )
)
