# CIFAR-10-LT, imbalance factor 100: the GraLoss (GLAG's), CE, LA, GALA
# and FBL stage ones of experiments/cifar10lt_if100.py (ResNet-32, 30
# epochs, seed 0) re-trained, then the stage-two methods on each with the
# settings chosen on the validation split of the GraLoss trunk (issue 10;
# the budgets of experiments/selection/), three stage-two seeds on each
# seed-0 trunk. Read by tools/run_experiments.py (fields:
# tools/glag_tools/experiments/spec.py).
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

from glag_tools.experiments.spec import (
    POSTHOC_TAU_FROM_VAL,
    chosen_settings,
    schedule_options,
)

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

title = 'CIFAR-10-LT (IF 100), ResNet-32, val-selected stage two'
description = (
    'CIFAR-10 re-encoded as JPEG (quality 75), long-tailed with '
    'n_i = floor(5000 * 100^(-i/9)) (12,406 training images); validation on '
    '100 left-out training images per class, test on the 10,000 test '
    'images. Stage one: GraLoss, CE, LA, GALA and FBL, 30 epochs (2 '
    'warm-up, cosine), batch 128, lr 0.1, seed 0. Stage two: frozen trunk, '
    '10 epochs on cached features (cRT and LWS: their chosen length), '
    'class-aware batches, three seeds on the seed-0 trunk; cRT, LWS and GLAG '
    'settings chosen on the validation split of the GraLoss trunk '
    '(results/cifar10lt_if100_selected/selection/). CIFAR-10-LT IF 100 has '
    'no few-shot class, so few is n/a.'
)
seeds = [0]

runs = []


def _stage_one(name, label, config):
    """The seed-0 stage-one run of one trunk."""
    runs.append(
        dict(
            name=name,
            label=label,
            group='Stage one (30 epochs)',
            config=_C + config,
            epochs=30,
            test_options=dict(POSTHOC_TAU_FROM_VAL),
        )
    )


_stage_one('graloss', 'GraLoss', 'graloss_r32_30e.py')
_STAGE_TWO = [
    ('crt', 'GraLoss + cRT, val-selected', 'crt_r32_10e.py', _CRT, []),
    ('lws', 'GraLoss + LWS, val-selected', 'lws_r32_10e.py', _LWS, []),
    ('kd', 'GraLoss + KD (nothing generated)', 'kd_r32_10e.py', _CRT, ['crt']),
    (
        'crt_init',
        'GraLoss + cRT from the stage-one classifier',
        'crt_init_r32_10e.py',
        _CRT,
        ['crt'],
    ),
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


# The paper's 40 stage-two epochs (item 4 of issue 10).
_FORTY = schedule_options(40)


def _stage_two(trunk, label, rows, prefix='', forty=False, test=None):
    """Runs of ``rows`` on the seed-0 ``trunk``, names and baselines with
    ``prefix``; GraLoss in the labels becomes ``label``. ``forty``: 40
    epochs, names and baselines ending in ``_40e``. ``test``: the runs'
    test_options."""
    suffix = '_40e' if forty else ''
    for name, row_label, config, options, base in rows:
        options = {**options, **_FORTY} if forty else dict(options)
        runs.append(
            dict(
                name=prefix + name + suffix,
                label=row_label.replace('GraLoss', label)
                + (', 40 epochs' if forty else ''),
                group=f'Stage two on {label}'
                + (', 40 epochs' if forty else ''),
                config=_C + config,
                epochs=options.get('train_cfg.max_epochs', 10),
                stage_one_from=trunk,
                stage_one_seed=0,
                seeds=[0, 1, 2],
                cfg_options=options,
                baseline=[prefix + b + suffix for b in base],
                test_options=dict(test or {}),
            )
        )


# On GLAG's trunk every stage two also gets the post-hoc tau chosen on
# validation: the stage-one classifier with it (GraLoss + post-hoc tau) is
# above every re-trained classifier; is what remains a bias the re-training
# left, or does re-training lose more than that?
_stage_two('graloss', 'GraLoss', _STAGE_TWO, test=POSTHOC_TAU_FROM_VAL)
if _GLAG:
    runs[-1]['note'] = 'chosen setting: ' + json.dumps(_GLAG, sort_keys=True)
# The CE trunk (the decoupling baseline's), the LA trunk (the fixed logit
# adjustment GraLoss grows into) and the sibling losses' trunks: stage one
# re-trained with its recorded recipe, then cRT, LWS, AFG and the
# val-selected GLAG setting, all with the settings chosen on the GraLoss
# trunk (no second selection).
_ON_OTHER = [r for r in _STAGE_TWO if r[0] in ('crt', 'lws', 'afg')]
for _row in _STAGE_TWO:
    if _row[0] == 'glag_val':  # compared with AFG on the same trunk
        _ON_OTHER.append(
            (
                'glag_val',
                'GraLoss + GLAG stage two, val-selected setting',
                _row[2],
                _row[3],
                ['crt', 'lws', 'afg'],
            )
        )
for _name, _label, _config in (
    ('ce', 'CE', 'ce_r32_30e.py'),
    ('la', 'LA', 'la_r32_30e.py'),
    ('gala', 'GALA', 'gala_r32_30e.py'),
    ('fbl', 'FBL', 'fbl_r32_30e.py'),
):
    _stage_one(_name, _label, _config)
    _stage_two(_name, _label, _ON_OTHER, prefix=_name + '_')

# Every stage-two method on GLAG's trunk again at the paper's 40 epochs
# (the ablations of the confidence reference and KD alone stay at 10).
_stage_two(
    'graloss',
    'GraLoss',
    [
        r
        for r in _STAGE_TWO
        if r[0] not in ('kd', 'crt_init', 'afg_kd_stage_one')
    ],
    forty=True,
)

compare = [('crt', 'afg_kd')]
