# CIFAR-10-LT, imbalance factor 100, GLAG's trunk only: the GraLoss stage
# one of experiments/cifar10lt_if100.py (ResNet-32, 30 epochs, seed 0)
# re-trained, then every stage-two method on it with the settings chosen on
# the validation split (issue 10; the budgets of experiments/selection/),
# three stage-two seeds on the seed-0 trunk. Read by
# tools/run_experiments.py (fields: experiments/lib/spec.py).
#
#   bash tools/get_cifar10.sh data/cifar10        # the JPEG tree, once
#   python tools/run_experiments.py experiments/cifar10lt_if100_selected.py \
#       --only graloss
#   python tools/select_settings.py \
#       configs/experiments/cifar10lt_if100/crt_r32_10e.py \
#       --spec experiments/selection/crt.py \
#       --cfg-options stage_one_checkpoint=STAGE_ONE.pth   # and lws, glag
#   (records copied to results/cifar10lt_if100_selected/selection/<method>/)
#   python tools/run_experiments.py experiments/cifar10lt_if100_selected.py
#   python tools/make_report.py results/cifar10lt_if100_selected

import json

from experiments.lib.spec import chosen_settings

_C = 'configs/experiments/cifar10lt_if100/'
# positions in afg_kd_r32_10e.py's custom_hooks, for the chosen keys
_HOOKS = {'AFGHook': 2, 'GLAGDistillHook': 3}
_CRT, _LWS, _GLAG = (
    chosen_settings(__file__, m, _HOOKS) for m in ('crt', 'lws', 'glag')
)
_KEEP_ALL = {
    'default_hooks.checkpoint.interval': 1,
    'default_hooks.checkpoint.max_keep_ckpts': -1,
}

title = (
    'CIFAR-10-LT (IF 100), ResNet-32, GraLoss trunk, val-selected stage two'
)
description = (
    'CIFAR-10 re-encoded as JPEG (quality 75), long-tailed with '
    'n_i = floor(5000 * 100^(-i/9)) (12,406 training images); validation on '
    '100 left-out training images per class, test on the 10,000 test '
    'images. Stage one: GraLoss, 30 epochs (2 warm-up, cosine), batch 128, '
    'lr 0.1, seed 0. Stage two: frozen trunk, 10 epochs on cached features '
    '(cRT and LWS: their chosen length), class-aware batches, three seeds on '
    'the seed-0 trunk; cRT, LWS and GLAG settings chosen on the validation '
    'split (results/cifar10lt_if100_selected/selection/). CIFAR-10-LT IF 100 '
    'has no few-shot class, so few is n/a.'
)
seeds = [0]

runs = [
    dict(
        name='graloss',
        label='GraLoss',
        group='Stage one (30 epochs)',
        config=_C + 'graloss_r32_30e.py',
        epochs=30,
    )
]
_STAGE_TWO = [
    ('crt', 'GraLoss + cRT, val-selected', 'crt_r32_10e.py', _CRT, []),
    ('lws', 'GraLoss + LWS, val-selected', 'lws_r32_10e.py', _LWS, []),
    ('kd', 'GraLoss + KD (nothing generated)', 'kd_r32_10e.py', _CRT, ['crt']),
    ('afg', 'GraLoss + AFG', 'afg_r32_10e.py', _KEEP_ALL, ['crt', 'lws']),
    (
        'afg_kd',
        'GLAG (GraLoss + AFG + KD), defaults',
        'afg_kd_r32_10e.py',
        _KEEP_ALL,
        ['crt', 'lws', 'afg'],
    ),
    (
        'afg_kd_stage_one',
        "GLAG, confidence reference 'stage_one'",
        'afg_kd_r32_10e.py',
        {**_KEEP_ALL, 'model.head.confidence_reference': 'stage_one'},
        ['afg_kd'],
    ),
]
if _GLAG:
    _STAGE_TWO.append(
        (
            'glag_val',
            'GLAG, val-selected',
            'afg_kd_r32_10e.py',
            {**_KEEP_ALL, **_GLAG},
            ['crt', 'lws', 'afg_kd'],
        )
    )


def _stage_two(trunk, label, rows, prefix=''):
    """Runs of ``rows`` on the seed-0 ``trunk``, names and baselines with
    ``prefix``; GraLoss in the labels becomes ``label``."""
    for name, row_label, config, options, base in rows:
        runs.append(
            dict(
                name=prefix + name,
                label=row_label.replace('GraLoss', label),
                group=f'Stage two on {label}',
                config=_C + config,
                epochs=options.get('train_cfg.max_epochs', 10),
                stage_one_from=trunk,
                stage_one_seed=0,
                seeds=[0, 1, 2],
                cfg_options=dict(options),
                baseline=[prefix + b for b in base],
            )
        )


_stage_two('graloss', 'GraLoss', _STAGE_TWO)
if _GLAG:
    runs[-1]['note'] = 'chosen setting: ' + json.dumps(_GLAG, sort_keys=True)
# The CE trunk (the decoupling baseline's): stage one re-trained with its
# recorded recipe, the stage-two methods with the settings chosen on the
# GraLoss trunk (no second selection).
runs.append(
    dict(
        name='ce',
        label='CE',
        group='Stage one (30 epochs)',
        config=_C + 'ce_r32_30e.py',
        epochs=30,
    )
)
_ON_CE = [r for r in _STAGE_TWO if r[0] in ('crt', 'lws', 'afg', 'afg_kd')]
_stage_two('ce', 'CE', _ON_CE, prefix='ce_')
runs[-1]['label'] = 'CE + AFG + KD'

compare = [('crt', 'afg_kd')]
