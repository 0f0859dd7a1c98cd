# Fashion-MNIST-LT (IF 100): one-factor ablations of GLAG's stage two around
# its defaults (the six suspects of the second study), on the seed-0 GraLoss
# trunk of experiments/fashionmnistlt_if100.py: the same config and seed,
# retrained here (its record matches that spec's graloss seed 0).
#
#   bash tools/get_fashion_mnist.sh data/fashion-mnist   # once
#   python tools/run_experiments.py \
#       experiments/fashionmnistlt_if100_ablation.py
#   python tools/make_report.py results/fashionmnistlt_if100_ablation
#
# Every row is a shipped config, configs/experiments/fashionmnistlt_if100/
# ablation/<name>.py: afg_kd_r8.py (GLAG's defaults) with one knob changed,
# 10 stage-two epochs as the first study's rows. Each run keeps its final
# validation's per-image labels (val_evaluator.samples_file in its
# work_dir; the record holds them), so make_report's ablation.md compares
# every row with the defaults on the same 1,000 validation images (paired
# bootstrap, 95 % interval): a row is beyond the noise only where the
# whole interval lies on one side of zero. Decisions read validation
# only; the test columns are reported beside them.
#
# Screening runs seed 0 of stage two; the defaults and the rows beyond the
# noise on validation get stage-two seeds 1 and 2 on the same seed-0
# trunk (stage_one_seed=0), so their spread is stage two's own.
import os.path as osp

from glag_tools.experiments.spec import POSTHOC_TAU_FROM_VAL, chosen_settings

_C = 'configs/experiments/fashionmnistlt_if100/'
_A = _C + 'ablation/'
# test: post-hoc tau and the temperature chosen on validation (ECE before
# and after temperature scaling); tau-norm does not apply to AFGHead.
_TEST = {
    **POSTHOC_TAU_FROM_VAL,
    'val_evaluator.temperature': 'val',
    'test_evaluator.temperature': 'val',
}
_VAL = {'val_evaluator.samples_file': '{work_dir}/val_samples.json'}

title = 'Fashion-MNIST-LT (IF 100): GLAG stage-two ablations, GraLoss trunk'
description = (
    'One-factor ablations of GLAG stage two (AFG + KD, 10 epochs on cached '
    'features) around the defaults of '
    'configs/experiments/fashionmnistlt_if100/afg_kd_r8.py, on the seed-0 '
    "GraLoss trunk (8 epochs, the first study's); seed 0 screening, seeds "
    '1 and 2 of stage two (same trunk) for the defaults and the rows beyond '
    'the validation noise. Validation: 100 held-out training images per '
    'class; test: the 10,000 test images.'
)
seeds = [0]
# (suspect, name, label)
_ROWS = [
    ('1: tail set', 'tail_0p1', 'tail_threshold 0.1 n_max'),
    ('1: tail set', 'tail_100', 'tail_threshold 100 images'),
    ('1: s_c start', 'init_conf_0p2', 'init_confidence 0.2'),
    ('1: s_c start', 'init_conf_0', 'init_confidence 0'),
    ('2: donor weights', 'donors_uniform', "donor_weighting 'uniform'"),
    ('2: donor weights', 'donors_sqrt', "'sqrt_count_distance'"),
    ('2: donor weights', 'donors_2', 'num_donors 2'),
    ('3: generation', 'ratio_0p25', 'generation_ratio 0.25'),
    ('3: generation', 'ratio_0p5', 'generation_ratio 0.5'),
    ('3: generation', 'balance', "generation 'balance'"),
    ('4: KD', 'kd_head', "kd_logits 'head'"),
    ('4: KD', 'teacher_tau1', 'teacher_tau 1'),
    ('4: KD', 'kd_t2', 'KD temperature 2'),
    ('4: KD', 'kd_t4', 'KD temperature 4'),
    ('5: lr', 'lr_0p03', 'lr 0.03'),
    ('6: s_c rule', 'smoothing_0p5', 'confidence_smoothing 0.5'),
    ('6: s_c rule', 'step_0p02', 'confidence_step 0.02'),
]
# stage-two seeds beyond 0 (the defaults' and, after screening, those of
# the rows beyond the validation noise)
_MORE_SEEDS = {
    'defaults': [1, 2],
    'tail_100': [1, 2],
    'init_conf_0p2': [1, 2],
    'init_conf_0': [1, 2],
    'balance': [1, 2],
}

_STAGE_TWO = dict(
    stage_one_from='graloss',
    stage_one_seed=0,
    cfg_options=_VAL,
    test_options=_TEST,
    epochs=10,
)
runs = [
    dict(
        name='graloss',
        label='GraLoss',
        group='Stage one',
        config=_C + 'graloss_r8.py',
        cfg_options={},
        test_options=dict(POSTHOC_TAU_FROM_VAL),
        epochs=8,
    ),
    dict(
        name='defaults',
        label='GLAG, defaults (afg_kd_r8.py)',
        group='0: defaults',
        config=_C + 'afg_kd_r8.py',
        seeds=[0] + _MORE_SEEDS['defaults'],
        **_STAGE_TWO,
    ),
]
runs += [
    dict(
        name=name,
        label=label,
        group=suspect,
        config=f'{_A}{name}.py',
        seeds=[0] + _MORE_SEEDS.get(name, []),
        baseline=['defaults'],
        **_STAGE_TWO,
    )
    for suspect, name, label in _ROWS
]
# AFG without distillation (afg_r8.py, the first study's 'AFG' row): what
# KD costs or gains, the rarest class included, on this trunk
runs.append(
    dict(
        name='no_kd',
        label='no KD (afg_r8.py)',
        group='4: KD',
        config=_C + 'afg_r8.py',
        seeds=[0],
        baseline=['defaults'],
        **_STAGE_TWO,
    )
)
# GraLoss + cRT with the first study's validation-chosen setting (read from
# that spec's selection record): the simpler row GLAG has to beat
_CRT = chosen_settings(
    osp.join(osp.dirname(__file__), 'fashionmnistlt_if100.py'), 'crt'
)
runs.append(
    dict(
        name='crt',
        label='cRT, val-selected (crt_r8.py)',
        group='reference rows',
        config=_C + 'crt_r8.py',
        seeds=[0, 1, 2],
        baseline=['defaults'],
        **{
            **_STAGE_TWO,
            'cfg_options': {**_VAL, **_CRT},
            'epochs': _CRT.get('train_cfg.max_epochs', 10),
        },
    )
)
