# Fashion-MNIST-LT, imbalance factor 100 (14,886 training images, the
# balanced 10,000-image test set), the demo's ResNet-8 (8/16/32 channels),
# three seeds everywhere (issue 4, item 2). Read by
# tools/run_experiments.py (see experiments/lib/spec.py for the fields).
#
#   bash tools/get_fashion_mnist.sh data/fashion-mnist   # once
#   python tools/run_experiments.py experiments/fashionmnistlt_if100.py \
#       --dry-run
#   python tools/run_experiments.py experiments/fashionmnistlt_if100.py \
#       --max-hours 2 --commit
#   python tools/make_report.py results/fashionmnistlt_if100
#
# Stage one uses the demo's setting (8 epochs, cosine) plus validation on
# held-out training images; the fixed logit-adjusted loss is GraLoss with
# schedule='constant', tau_max = 1. Stage two (cRT, LWS, AFG, AFG + KD; 10
# epochs on cached features) runs on every stage-one model, seed k on the
# seed-k stage-one model; GLAG is GraLoss + AFG + KD.

_C = 'configs/experiments/fashionmnistlt_if100/'
_STAGE_ONE = [
    ('ce', 'CE', _C + 'ce_r8.py', {}, []),
    ('la', 'LA', _C + 'la_r8.py', {}, ['ce']),
    ('graloss', 'GraLoss', _C + 'graloss_r8.py', {}, ['ce', 'la']),
    ('gala', 'GALA', _C + 'gala_r8.py', {}, ['ce']),
    ('fbl', 'FBL', _C + 'fbl_r8.py', {}, ['ce']),
]
# Stage-two configs use '{stage_one_checkpoint}'; the runner passes the
# chosen stage-one run's final checkpoint. AFG runs keep every epoch's
# checkpoint so that make_report can plot the confidence scores s_c.
_KEEP_ALL = {
    'default_hooks.checkpoint.interval': 1,
    'default_hooks.checkpoint.max_keep_ckpts': -1,
}
_STAGE_TWO = [
    ('crt', 'cRT', 'crt_r8.py', {}),
    ('lws', 'LWS', 'lws_r8.py', {}),
    ('afg', 'AFG', 'afg_r8.py', _KEEP_ALL),
    ('afg_kd', 'AFG + KD', 'afg_kd_r8.py', _KEEP_ALL),
]

title = 'Fashion-MNIST-LT (IF 100), ResNet-8, on 2 CPU cores'
description = (
    'Fashion-MNIST (Debian package dataset-fashion-mnist), long-tailed with '
    'n_i = floor(6000 * 100^(-i/9)) (14,886 training images); test on the '
    '10,000 test images. Stage one: the demo schedule (8 epochs, cosine, '
    'batch 128, lr 0.1); validation on 100 left-out training images per '
    'class. Stage two: frozen stage-one trunk, 10 epochs on cached '
    'features, class-aware batches; seed k runs on the seed-k stage-one '
    'model. Three seeds everywhere.'
)
seeds = [0, 1, 2]

runs = [
    dict(
        name=name,
        label=label,
        group='Stage one',
        config=config,
        cfg_options=options,
        baseline=base,
    )
    for name, label, config, options, base in _STAGE_ONE
]
for _run in runs:
    _run['epochs'] = 8
for _s1, _s1_label, *_ in _STAGE_ONE[:3]:
    for _s2, _s2_label, _config, _options in _STAGE_TWO:
        _base = [f'{_s1}_crt', f'{_s1}_lws'] if _s2.startswith('afg') else []
        if _s2 == 'afg_kd':
            _base.append(f'{_s1}_afg')
        if _s1 == 'graloss':
            _base.append(f'ce_{_s2}')
        runs.append(
            dict(
                name=f'{_s1}_{_s2}',
                label=f'{_s1_label} + {_s2_label}',
                group=f'Stage two on {_s1_label}',
                config=_C + _config,
                stage_one_from=_s1,
                cfg_options=dict(_options),
                baseline=_base,
                epochs=10,
            )
        )
# GLAG (GraLoss + AFG + KD) against every stage-one method as well.
runs[-1]['baseline'] += ['ce', 'la', 'graloss']
runs[-1]['label'] = 'GLAG (GraLoss + AFG + KD)'
runs[1]['note'] = (
    "logit-adjusted loss: GradualBalancedLoss with schedule='constant', "
    'tau = 1 from the first step'
)

compare = [
    ('ce', 'graloss_afg_kd'),
    ('ce', 'graloss'),
    ('graloss_crt', 'graloss_afg_kd'),
]
