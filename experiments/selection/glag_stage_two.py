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
# ones: 1 + 2 + 2 + 2 + 2 + 1 + 1 = 11 training runs; the same budget
# (max_runs) as the baselines' specs beside this file.

search = 'coordinate'
max_runs = 12
criterion = 'lt/top1'

grid = {
    # s_c's start (AFGHead.init_confidence, 0.6 [paper]).
    'model.head.init_confidence': [0.6, 0.4, 0.8],
    # The confidence reference (issue: 'previous' or 'stage_one') is not an
    # AFGHead option yet; once it is, add its axis here, e.g.
    # 'model.head.confidence_reference': ['previous', 'stage_one'],
    # Tail classes: fewer images than this fraction of n_max (the configs'
    # 0.2; GLAGDistillHook's tail_threshold=None follows it).
    'model.head.tail_threshold': [0.2, 0.1, 0.35],
    # Generation mode and ratio, changed together.
    'generation': [
        {'model.head.generation': 'ratio', 'model.head.generation_ratio': 1.0},
        {'model.head.generation': 'ratio', 'model.head.generation_ratio': 2.0},
        {'model.head.generation': 'balance'},
    ],
    # KD temperature T.
    'custom_hooks.GLAGDistillHook.temperature': [1.0, 2.0, 4.0],
    # beta's end value (beta_max; the paper's tau_max of the KD weight).
    'custom_hooks.GLAGDistillHook.beta_max': [1.0, 0.5],
    # KD on head classes only (None: the head's tail threshold) or on every
    # class (1: no class has fewer than one image, so none is a tail class).
    'custom_hooks.GLAGDistillHook.tail_threshold': [None, 1],
}
