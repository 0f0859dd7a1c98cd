# GLAG's stage-two settings, chosen on the validation split by
# tools/select_settings.py (a data file: update the keys here when the
# options of AFGHead / GLAGDistillHook change). For a GLAG stage-two config
# (AFGHead plus AFGHook and GLAGDistillHook, e.g.
# configs/experiments/fashionmnistlt_if100/afg_kd_r8.py):
#
#   python tools/select_settings.py \
#       configs/experiments/fashionmnistlt_if100/afg_kd_r8.py \
#       --spec experiments/selection/glag_stage_two.py \
#       --cfg-options stage_one_checkpoint=STAGE_ONE.pth \
#       --work-dir work_dirs/select/fashionmnistlt_if100_glag_seed0
#
# Coordinate search: the first value of every axis (the configs' defaults)
# first, then each axis in turn keeps its best value given the earlier
# ones: 1 + 8 = 9 training runs of the config's 10 epochs, 90 epochs; the
# baselines' specs beside this file spend 6 runs of 10 or 20 epochs, the same
# 90 epochs.

search = 'coordinate'
max_runs = 9
criterion = 'lt/top1'

# GLAG's own sampling for 'balance' (docs/method.md stage two, item 7):
# instance-balanced real batches topped up to n_max with generated features
# (on class-aware batches every class is already at the mean and 'balance'
# would generate almost nothing).
_BALANCE = {
    'model.head.generation': 'balance',
    'train_dataloader.sampler.type': 'DefaultSampler',
    'train_dataloader.sampler.shuffle': True,
}

grid = {
    # What acc_c is compared with (AFGHead.confidence_reference): the last
    # validation ('previous') or the stage-one model ('stage_one'; AFGHook
    # needs stage_one_checkpoint, which the GLAG configs give it).
    'model.head.confidence_reference': ['previous', 'stage_one'],
    # s_c's start (AFGHead.init_confidence, 0.6 [paper]).
    'model.head.init_confidence': [0.6, 0.4],
    # Tail classes: fewer images than this fraction of n_max (the configs'
    # 0.2; GLAGDistillHook's tail_threshold=None follows it).
    'model.head.tail_threshold': [0.2, 0.35],
    # Generation: one generated feature per real one on class-aware batches
    # ('ratio') or GLAG's top-up on instance-balanced batches ('balance').
    'generation': [
        {'model.head.generation': 'ratio', 'model.head.generation_ratio': 1.0},
        _BALANCE,
    ],
    # KD temperature T.
    'custom_hooks.GLAGDistillHook.temperature': [1.0, 4.0],
    # beta's end value (beta_max; the paper's tau_max of the KD weight); 0
    # turns KD off, so the search can find where distillation costs.
    'custom_hooks.GLAGDistillHook.beta_max': [1.0, 0.5, 0.0],
    # KD on head classes only (None: the head's tail threshold) or on every
    # class (1: no class has fewer than one image, so none is a tail class).
    'custom_hooks.GLAGDistillHook.tail_threshold': [None, 1],
}
