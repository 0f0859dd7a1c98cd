_base_ = [
    '../_base_/models/resnet10.py',
    '../_base_/datasets/imagenetlt_bs512.py',
    './_base_/stage_two_40e_bs512.py',
    '../_base_/default_runtime.py',
]

# cRT (Kang et al. 2020) stage two, ResNet-10 on ImageNet-LT:
# the stage-one trunk, frozen (_base_/stage_two_40e_bs512.py).
train_dataloader = dict(
    dataset=dict(pipeline={{_base_.test_pipeline}}),
    sampler=dict(type='ClassAwareSampler'),
)
model = dict(
    type='StageTwoClassifier', head=dict(num_classes=1000, topk=(1, 5))
)

custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='StageOneCheckpointHook'),
]
