# CIFAR-10-LT at imbalance factor 10, otherwise exactly the IF 100 sweep
# (experiments/cifar10lt_if100.py): the same ResNet-32 configs, 30 stage-one
# and 10 stage-two epochs, with the long-tailed training subset and the
# held-out validation set switched to IF 10 through cfg_options. Smaller
# than the IF 100 sweep: stage one CE and GraLoss, stage two cRT, LWS, AFG
# and AFG + KD on each, one seed everywhere.
#
#   python tools/run_experiments.py experiments/cifar10lt_if10.py

_C = 'configs/experiments/cifar10lt_if100/'
_IF10 = {
    'train_dataloader.dataset.imbalance_factor': 10,
    'val_dataloader.dataset.imbalance_factor': 10,
}
_KEEP_ALL = {
    'default_hooks.checkpoint.interval': 1,
    'default_hooks.checkpoint.max_keep_ckpts': -1,
}

title = 'CIFAR-10-LT (IF 10), ResNet-32, 30 + 10 epochs on 2 CPU cores'
description = (
    'CIFAR-10 re-encoded as JPEG (quality 75), long-tailed with '
    'n_i = floor(5000 * 10^(-i/9)) (20,431 training images); validation on '
    '100 left-out training images per class, test on the 10,000 test '
    'images. Stage one: 30 epochs (2 warm-up, cosine), batch 128, lr 0.1. '
    'Stage two: 10 epochs on the frozen stage-one trunk. One seed. Every '
    'class has more than 100 images at IF 10, so all are many-shot; AFG '
    'treats the classes below a fifth of n_max (834, 645, 500 images) as '
    'the tail.'
)
seeds = [0]

runs = [
    dict(
        name='ce',
        label='CE',
        group='Stage one (30 epochs)',
        config=_C + 'ce_r32_30e.py',
        epochs=30,
        cfg_options=dict(_IF10),
    ),
    dict(
        name='graloss',
        label='GraLoss',
        group='Stage one (30 epochs)',
        config=_C + 'graloss_r32_30e.py',
        epochs=30,
        cfg_options=dict(_IF10),
        baseline=['ce'],
    ),
]
for _s1, _s1_label in (('ce', 'CE'), ('graloss', 'GraLoss')):
    for _s2, _s2_label, _config, _options in (
        ('crt', 'cRT', 'crt_r32_10e.py', {}),
        ('lws', 'LWS', 'lws_r32_10e.py', {}),
        ('afg', 'AFG', 'afg_r32_10e.py', _KEEP_ALL),
        ('afg_kd', 'AFG + KD', 'afg_kd_r32_10e.py', _KEEP_ALL),
    ):
        _base = [f'{_s1}_crt', f'{_s1}_lws'] if _s2.startswith('afg') else []
        runs.append(
            dict(
                name=f'{_s1}_{_s2}',
                label=f'{_s1_label} + {_s2_label}',
                group=f'Stage two on {_s1_label}',
                config=_C + _config,
                epochs=10,
                stage_one_from=_s1,
                cfg_options={**_options, **_IF10},
                baseline=_base,
            )
        )
runs[-1]['label'] = 'GLAG (GraLoss + AFG + KD)'
runs[-1]['baseline'] += ['ce_afg_kd', 'graloss_afg']

compare = [('ce', 'graloss_afg_kd'), ('graloss_crt', 'graloss_afg_kd')]
