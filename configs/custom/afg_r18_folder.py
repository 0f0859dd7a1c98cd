_base_ = [
    'mmpretrain::_base_/models/resnet18.py',
    './_base_/folder_lt.py',
    '../glag/_base_/stage_two_40e_bs128.py',
    '../_base_/default_runtime.py',
]

# GLAG's stage two on your own folder tree: the stage-one trunk, frozen
# (configs/glag/_base_/stage_two_40e_bs512.py), a re-initialised AFGHead on
# class-aware batches with one generated feature per real one, the statistics
# pass and adaptive confidence (AFGHook, validated on the held-out part of the
# training tree) and distillation from the stage-one model.
# Tail classes: fewer than a fifth of n_max images (a fraction, as your
# dataset's scale is unknown; docs/method.md's default is the count 100).
train_dataloader = dict(
    dataset=dict(dataset=dict(pipeline={{_base_.test_pipeline}})),
    sampler=dict(type='ClassAwareSampler'),
)
model = dict(
    type='StageTwoClassifier',
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
