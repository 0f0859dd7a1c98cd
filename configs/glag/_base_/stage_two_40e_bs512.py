# Stage two on ImageNet-LT, Places-LT and iNaturalist 2018 (docs/method.md, the
# paper's training recipes): only the classifier trains, for 40 "generation
# epochs" [paper], with the stage-one recipe's SGD (momentum 0.9, weight decay
# 5e-4) and cosine annealing to 0 per iteration [paper]; lr 0.2 at batch 512
# (8 x 64), no warm-up [ours]. Validation after every epoch: the adaptive
# confidence of AFG is updated from it.
_base_ = ['../../_base_/schedules/imagenetlt_200e.py']

param_scheduler = dict(T_max=40, end=40)
# StageTwoTrainLoop / StageTwoValLoop: the epochs run on the trunk's features,
# computed once, and each validation comes before its epoch's checkpoint, so
# what it decides (AFG's confidence) is saved with the epoch.
train_cfg = dict(
    _delete_=True, type='StageTwoTrainLoop', max_epochs=40, val_interval=1
)
val_cfg = dict(type='StageTwoValLoop')

# The stage-one checkpoint every stage-two config reads (cRT, Kang et al.
# 2020): one key, set with --cfg-options stage_one_checkpoint=PATH under
# mmpretrain's or glag_mm's tools (glag_mm's tools/train.py sets it from the
# stage named in init_from), published when the run starts by
# StageOneCheckpointHook. Configs set model.type='StageTwoClassifier' (the
# stage-one backbone, frozen and loaded from this file), train a
# re-initialised classifier on class-aware batches, and use no augmentation
# on the frozen trunk [ours], so its features are computed once and the
# epochs run on them (the loops above).
stage_one_checkpoint = None
