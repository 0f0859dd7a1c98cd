# GLAG's stage-two settings on the widened grid of the second study, chosen
# on the validation split by tools/select_settings.py (a data file: update
# the keys here when the options of AFGHead / GLAGDistillHook change). For
# the defaults' stage-two config of an ablation spec (e.g.
# configs/experiments/cifar10lt_if100/afg_kd_r32_10e.py) on its seed-0
# trunk:
#
#   python tools/select_settings.py \
#       configs/experiments/cifar10lt_if100/afg_kd_r32_10e.py \
#       --spec experiments/selection/glag_stage_two_wide.py \
#       --cfg-options stage_one_checkpoint=STAGE_ONE.pth \
#       --work-dir work_dirs/select/cifar10lt_if100_glag_wide
#
# The screen: the one-factor ablations of the six suspects
# (experiments/*_ablation.py, their ablation.md) compared every knob with
# the defaults on the same validation images. This grid searches only the
# axes where some value was beyond the validation noise on at least one of
# the three datasets (Fashion-MNIST-LT, CIFAR-10-LT on the GraLoss trunk,
# the Lite0 probe): the tail set, s_c's start, the number of donors, how
# much is generated, and the distillation (its logits, its teacher, on or
# off). The rest of the widened grid (donor weighting uniform or sqrt,
# generation ratios 0.25 and 0.5, KD temperature 2 and 4, stage-two lr
# 0.03, the s_c rule's smoothing and step) was within the noise or worse
# than the defaults on every dataset and is screened out.
#
# Coordinate search from the configs' defaults (every axis's first value):
# 1 + 1 + 2 + 1 + 1 + 2 + 1 = 9 training runs of the config's 10 epochs.
# The defaults are kept unless a point beats them beyond the noise (paired
# bootstrap of the validation images, the whole 95 % interval above zero).

search = 'coordinate'
max_runs = 9
criterion = 'lt/top1'

_KD = 'custom_hooks.GLAGDistillHook.'

grid = {
    # Tail classes (AFGHead.tail_threshold): fewer images than 0.2 n_max
    # (the configs') or than 100 images (the many-shot bound).
    'model.head.tail_threshold': [0.2, 100],
    # s_c's start (AFGHead.init_confidence, 0.6 [paper]).
    'model.head.init_confidence': [0.6, 0.2, 0.0],
    # k, the donors of a tail class (AFGHead.num_donors).
    'model.head.num_donors': [3, 2],
    # Generation: one generated feature per real one on class-aware batches
    # ('ratio') or GLAG's top-up to n_max on instance-balanced batches
    # ('balance', as in glag_stage_two.py).
    'generation': [
        {'model.head.generation': 'ratio', 'model.head.generation_ratio': 1.0},
        {
            'model.head.generation': 'balance',
            'train_dataloader.sampler.type': 'DefaultSampler',
            'train_dataloader.sampler.shuffle': True,
        },
    ],
    # Distillation: over all C logits (the configs'), over the head
    # classes' logits only, or off (beta_max 0).
    'kd': [
        {_KD + 'kd_logits': 'all', _KD + 'beta_max': 1.0},
        {_KD + 'kd_logits': 'head', _KD + 'beta_max': 1.0},
        {_KD + 'kd_logits': 'all', _KD + 'beta_max': 0.0},
    ],
    # The teacher's logits as they are (0) or logit-adjusted by tau = 1.
    _KD + 'teacher_tau': [0.0, 1.0],
}
