_base_ = [
    '../_base_/models/resnet32_cifar.py',
    './_base_/folder_lt_32px.py',
    '../glag/_base_/stage_two_40e_bs128.py',
    '../_base_/default_runtime.py',
]

# GLAG's stage two on your own small images (graloss_r20_folder_32px.py's
# trunk, frozen; what it sets: afg_r18_folder.py).
train_dataloader = dict(
    dataset=dict(dataset=dict(pipeline={{_base_.test_pipeline}})),
    sampler=dict(type='ClassAwareSampler'),
)
model = dict(
    type='StageTwoClassifier',
    backbone=dict(type='CifarResNet', depth=20),
    head=dict(
        type='AFGHead',
        num_classes={{_base_.num_classes}},
        generation='ratio',
        tail_threshold=0.2,
        topk=(1,),
    ),
)
randomness = dict(seed=0)

custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='StageOneCheckpointHook'),
    dict(type='AFGHook'),
    dict(type='GLAGDistillHook'),
]
