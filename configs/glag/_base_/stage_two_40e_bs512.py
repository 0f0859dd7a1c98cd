# Stage two on ImageNet-LT, Places-LT and iNaturalist 2018 (docs/method.md, the
# paper's training recipes): only the classifier trains, for 40 "generation
# epochs" [paper], with the stage-one recipe's SGD (momentum 0.9, weight decay
# 5e-4) and cosine annealing to 0 per iteration [paper]; lr 0.2 at batch 512
# (8 x 64), no warm-up [ours]. Validation after every epoch: the adaptive
# confidence of AFG is updated from it.
_base_ = ['../../_base_/schedules/imagenetlt_200e.py']

param_scheduler = dict(T_max=40, end=40)
train_cfg = dict(max_epochs=40, val_interval=1)

# The stage-one checkpoint every stage-two config reads (cRT, Kang et al.
# 2020): one key, set with --cfg-options stage_one_checkpoint=PATH under
# mmpretrain's or glag_mm's tools (glag_mm's tools/train.py sets it from the
# stage named in init_from), published when the run starts by
# StageOneCheckpointHook. Configs wrap the stage-one backbone dict in
# ``backbone=dict(_delete_=True, type='FrozenBackbone',
# backbone={{_base_.model.backbone}})`` (frozen and loaded from this file),
# train a re-initialised classifier on class-aware batches, and use no
# augmentation on the frozen trunk [ours], so its features are computed once
# (FeatureCacheHook) and the epochs run on the cache.
stage_one_checkpoint = None
