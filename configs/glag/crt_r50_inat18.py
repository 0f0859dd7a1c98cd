_base_ = [
    'mmpretrain::_base_/models/resnet50.py',
    '../_base_/datasets/inat18_bs512.py',
    './_base_/stage_two_40e_bs512.py',
    '../_base_/default_runtime.py',
]

# cRT (Kang et al. 2020) stage two, ResNet-50 on iNaturalist 2018:
# the stage-one trunk, frozen (_base_/stage_two_40e_bs512.py).
train_dataloader = dict(
    dataset=dict(pipeline={{_base_.test_pipeline}}),
    # An epoch of n_max * C = 8.1M class-aware draws would make 40 epochs
    # impractical; 54 per class is about one pass over the 437,513
    # training images [ours].
    sampler=dict(type='ClassAwareSampler', num_samples_per_class=54),
)
model = dict(
    type='StageTwoClassifier', head=dict(num_classes=8142, topk=(1, 5))
)

custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='StageOneCheckpointHook'),
]
