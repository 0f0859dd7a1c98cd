_base_ = [
    '../_base_/models/resnet8_fmnist.py',
    '../_base_/datasets/fashion_mnist_lt.py',
    '../glag/_base_/stage_two_40e_bs128.py',
    '../_base_/default_runtime.py',
]

# The demo's stage two (tools/demo.py), cRT (Kang et al. 2020): the stage-one
# trunk of configs/demo/*_r8_fmnistlt.py, frozen and loaded from the stage-one
# row's final checkpoint (configs/glag/_base_/stage_two_40e_bs512.py); a
# re-initialised linear classifier on class-aware batches (an epoch: 6,000
# picks per class), features computed once: 10 epochs (the paper's 40 scaled
# down, cosine to 0).
train_dataloader = dict(sampler=dict(type='ClassAwareSampler'))
model = dict(type='StageTwoClassifier')

# Validation after every epoch (AFG's adaptive confidence learns from it) on
# 100 images per class of the Fashion-MNIST *training* files that the
# long-tailed subset left out (the largest class, kept whole, has none);
# never the test set, which stays for the final test. mmpretrain 1.2's
# FashionMNIST reads the test files when test_mode=True, so it is False here.
val_dataloader = dict(dataset={{_base_.heldout_val_dataset}})

train_cfg = dict(max_epochs=10, val_interval=1)
param_scheduler = dict(T_max=10, end=10)
default_hooks = dict(
    logger=dict(interval=100),
    checkpoint=dict(interval=10, save_best=None, rule=None),
)
randomness = dict(seed=0)
custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='StageOneCheckpointHook'),
]
