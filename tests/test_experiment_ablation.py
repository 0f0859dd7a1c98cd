"""Validation labels in the experiment records and ``ablation.md``.

A run's ``cfg_options`` may name its final validation's samples file in
its own work_dir (``'{work_dir}'``); the record keeps the labels, and
:mod:`glag_tools.experiments.ablation` compares each row with its
reference on the same images with a paired bootstrap.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from glag_mm.evaluation.bootstrap import paired_bootstrap
from glag_tools.experiments import (
    Context,
    plan_jobs,
    spec_from_dict,
    write_ablation_table,
)
from glag_tools.experiments import plan as plan_module
from glag_tools.experiments.ablation import ablation_rows, compare_validation
from glag_tools.experiments.plan import ExperimentError
from glag_tools.experiments.recording import validation_record

REPO = Path(__file__).resolve().parents[1]
CONFIG = 'configs/experiments/fashionmnistlt_if100/crt_r8.py'
SAMPLES = {'val_evaluator.samples_file': '{work_dir}/val_samples.json'}


def test_work_dir_placeholder_and_validation_record(tmp_path):
    spec = spec_from_dict(
        dict(
            title='t',
            runs=[dict(name='a', config=CONFIG, cfg_options=SAMPLES)],
            seeds=[3],
        ),
        't',
    )
    ctx = Context(
        root=str(REPO),
        results_dir=str(tmp_path / 'results'),
        work_root=str(tmp_path / 'work'),
    )
    (job,) = plan_jobs(spec, ctx)
    path = tmp_path / 'work' / 'a' / 'seed3' / 'val_samples.json'
    for cmd in (
        plan_module.train_command(job, ctx, None, resume=False),
        plan_module.test_command(job, ctx, 'x.pth', None),
    ):
        assert f'val_evaluator.samples_file={path}' in cmd
    with pytest.raises(ExperimentError, match='no such file'):
        validation_record(job, ctx)
    gt = [0, 0, 0, 1, 2, 2]
    pred = [0, 1, 0, 1, 2, 0]
    path.parent.mkdir(parents=True)
    path.write_text(
        json.dumps(dict(gt=gt, pred=pred, pred_posthoc=gt, confidence=[1.0]))
    )
    record = validation_record(job, ctx)
    assert record['samples'] == dict(gt=gt, pred=pred, pred_posthoc=gt)
    assert record['top1'] == pytest.approx(4 / 6 * 100)
    # class means: 2/3, 1, 1/2
    assert record['class_mean'] == pytest.approx((2 / 3 + 1 + 0.5) / 3 * 100)
    spec.runs[0].cfg_options = {}
    assert validation_record(job, ctx) is None


def _record(run, seed, gt, pred, top1, per_class, counts):
    hits = np.mean(np.asarray(gt) == np.asarray(pred)) * 100
    return dict(
        run=run,
        seed=seed,
        top1=top1,
        many=90.0,
        medium=70.0,
        few=None,
        per_class_accuracy=per_class,
        class_counts=counts,
        metrics={'lt/ece': 5.0 + seed, 'lt/ece_temperature': 2.0},
        validation=dict(
            top1=float(hits), samples=dict(gt=list(gt), pred=list(pred))
        ),
    )


def _spec():
    return spec_from_dict(
        dict(
            title='Tiny',
            runs=[
                dict(name='ref', config='a.py', group='0'),
                dict(name='row', config='b.py', group='1', baseline='ref'),
            ],
        ),
        'tiny',
    )


def test_ablation_table_pairs_seeds_and_images(tmp_path):
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 3, 200)
    counts = [300, 40, 7]
    ref, row = [], []
    for seed in (0, 1):
        ref_pred = np.where(rng.random(200) < 0.6, gt, (gt + 1) % 3)
        row_pred = np.where(rng.random(200) < 0.9, gt, (gt + 2) % 3)
        ref.append(
            _record('ref', seed, gt, ref_pred, 60.0 + seed, [9, 8, 7], counts)
        )
        row.append(
            _record(
                'row', seed, gt, row_pred, 63.0 + 2 * seed, [9, 8, 1], counts
            )
        )
    # the reference has a third seed the row lacks: left out of the pairing
    ref.append(_record('ref', 2, gt, gt, 99.0, [9, 8, 7], counts))
    found = compare_validation(row, ref, resamples=300, seed=5)
    expected = paired_bootstrap(
        np.concatenate([gt, gt]),
        np.concatenate([r['validation']['samples']['pred'] for r in row]),
        np.concatenate([r['validation']['samples']['pred'] for r in ref[:2]]),
        'top1',
        300,
        5,
    )
    assert found['seeds'] == [0, 1]
    assert found['difference'] == pytest.approx(expected['difference'])
    assert found['interval'] == pytest.approx(expected['interval'])
    direct = np.mean([r['validation']['top1'] for r in row]) - np.mean(
        [r['validation']['top1'] for r in ref[:2]]
    )
    assert found['difference'] == pytest.approx(direct)
    assert found['interval'][0] > 0 and found['verdict'] == 'better'
    flipped = compare_validation(ref[:2], row, resamples=300, seed=5)
    assert flipped['verdict'] == 'worse'

    records = {'ref': ref, 'row': row}
    rows = ablation_rows(_spec(), records, resamples=300, seed=5)
    assert [r['reference'] for r in rows] == [None, 'ref']
    assert rows[1]['test_difference'] == pytest.approx([3.0, 4.0])
    assert rows[1]['test']['rarest class'] == [1, 1]  # class of 7 images
    assert rows[1]['test']['ECE'] == [5.0, 6.0]
    out = write_ablation_table(
        _spec(), records, str(tmp_path / 'ablation.md'), 300, 5
    )
    lines = Path(out).read_text().splitlines()
    low, high = found['interval']
    assert 'validation images of each common seed' in ' '.join(lines)
    val = np.mean([r['validation']['top1'] for r in row])
    assert lines[-1].startswith(f'| 1 | row | 0, 1 | {val:.2f}')
    assert (
        f'{found["difference"]:+.2f} [{low:+.2f}, {high:+.2f}] (s 0,1)'
        in lines[-1]
    )
    assert '| better | 64.00 ± 1.41 | +3.50 ± 0.71 |' in lines[-1]
    assert lines[-2].startswith('| 0 | ref | 0, 1, 2 |')


def test_other_validation_images_are_refused():
    gt = np.arange(6) % 3
    ref = [_record('ref', 0, gt, gt, 50.0, [1, 1, 1], [9, 5, 2])]
    row = [_record('row', 0, (gt + 1) % 3, gt, 50.0, [1, 1, 1], [9, 5, 2])]
    with pytest.raises(ValueError, match='other images'):
        compare_validation(row, ref)
    assert compare_validation(row, []) is None


def _leaves(value, prefix=''):
    """{dotted key: value} of a config's plain leaves (lists by position)."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return {prefix[:-1]: value}
    out = {}
    for key, item in items:
        out.update(_leaves(item, f'{prefix}{key}.'))
    return out


# each row's one changed knob, as dotted config keys (the GLAGDistillHook
# named by type, replaced by its position in the defaults' custom_hooks)
ROW_KNOBS = {
    'tail_0p1': {'model.head.tail_threshold': 0.1},
    'tail_100': {'model.head.tail_threshold': 100},
    'init_conf_0p2': {'model.head.init_confidence': 0.2},
    'init_conf_0': {'model.head.init_confidence': 0.0},
    'donors_uniform': {'model.head.donor_weighting': 'uniform'},
    'donors_sqrt': {'model.head.donor_weighting': 'sqrt_count_distance'},
    'donors_2': {'model.head.num_donors': 2},
    'ratio_0p25': {'model.head.generation_ratio': 0.25},
    'ratio_0p5': {'model.head.generation_ratio': 0.5},
    'balance': {'model.head.generation': 'balance'},
    'kd_head': {'custom_hooks.GLAGDistillHook.kd_logits': 'head'},
    'teacher_tau1': {'custom_hooks.GLAGDistillHook.teacher_tau': 1.0},
    'kd_t2': {'custom_hooks.GLAGDistillHook.temperature': 2.0},
    'kd_t4': {'custom_hooks.GLAGDistillHook.temperature': 4.0},
    'lr_0p03': {'optim_wrapper.optimizer.lr': 0.03},
    'smoothing_0p5': {'model.head.confidence_smoothing': 0.5},
    'step_0p02': {'model.head.confidence_step': 0.02},
}


ALL_ROWS = tuple(ROW_KNOBS)
KD_ROWS = ('kd_head', 'teacher_tau1', 'kd_t2', 'kd_t4')


@pytest.mark.parametrize(
    'spec_name, stage_one, rows, others',
    [
        ('fashionmnistlt_if100_ablation', 'graloss', ALL_ROWS, {'crt'}),
        ('cifar10lt_if100_ablation', 'graloss', ALL_ROWS, {'crt'}),
        ('cifar10lt_if100_la_ablation', 'la', ALL_ROWS, {'crt'}),
        ('cifar10lt_if100_lite0_ablation', 'probe', ALL_ROWS, {'crt'}),
        ('cifar10lt_if100_kd_short', 'graloss', KD_ROWS, set()),
    ],
)
def test_ablation_rows_change_one_knob_of_the_defaults(
    spec_name, stage_one, rows, others
):
    """Every row of an ablation spec is its defaults' config with exactly
    the one knob it names changed (nothing else differs), on the same
    stage-one run, with the defaults as its baseline."""
    from mmengine.config import Config

    from glag_tools.experiments import load_spec
    from glag_tools.experiments.ablation_spec import (
        ABLATION_ROWS,
        ZERO_TRAINING_TEST,
    )
    from glag_tools.experiments.spec import chosen_settings

    spec_file = REPO / 'experiments' / f'{spec_name}.py'
    spec = load_spec(str(spec_file))
    runs = {r.name: r for r in spec.runs}
    chosen = chosen_settings(
        str(spec_file), 'glag_wide', {'GLAGDistillHook': 3}, True
    )
    assert set(runs) == set(rows) | others | {
        stage_one,
        'defaults',
        'no_kd',
        'zero_training',
    } | ({'selected'} if chosen else set())
    assert set(ROW_KNOBS) == {r[1] for r in ABLATION_ROWS}
    # the comparison's rows: the stage one tested only (tau-norm, post-hoc
    # tau), AFG alone on three seeds, the val-selected options on three
    zero = runs['zero_training']
    assert zero.test_only and zero.config == runs[stage_one].config
    assert (zero.stage_one_from, zero.stage_one_seed) == (stage_one, 0)
    assert zero.test_options == {
        **runs[stage_one].test_options,
        **ZERO_TRAINING_TEST,
    }
    assert set(runs['no_kd'].seeds) >= {0, 1, 2}
    if chosen:
        assert runs['selected'].config == runs['defaults'].config
        assert runs['selected'].seeds == [0, 1, 2]
        assert runs['selected'].cfg_options == {
            **runs['defaults'].cfg_options,
            **chosen,
        }
    defaults = _leaves(
        Config.fromfile(REPO / runs['defaults'].config)._cfg_dict.to_dict()
    )
    hooks = [
        h['type']
        for h in Config.fromfile(REPO / runs['defaults'].config).custom_hooks
    ]
    kd = f'custom_hooks.{hooks.index("GLAGDistillHook")}.'
    for name in rows:
        knob = {
            k.replace('custom_hooks.GLAGDistillHook.', kd): v
            for k, v in ROW_KNOBS[name].items()
        }
        run = runs[name]
        assert run.baseline == ['defaults']
        assert (run.stage_one_from, run.stage_one_seed) == (stage_one, 0)
        assert run.cfg_options == runs['defaults'].cfg_options
        assert run.test_options == runs['defaults'].test_options
        cfg = Config.fromfile(REPO / run.config)._cfg_dict.to_dict()
        row = _leaves(cfg)
        changed = {
            k: row.get(k)
            for k in set(row) | set(defaults)
            if row.get(k) != defaults.get(k)
        }
        assert changed == knob, name


def test_lite0_ablation_probe_is_the_lite0_specs_probe():
    """The Lite0 ablation's stage one is the seed-0 linear probe of
    experiments/cifar10lt_if100_lite0.py, run for run (config, epochs,
    training and test options), and its cRT row carries that spec's
    validation-chosen cRT setting."""
    from glag_tools.experiments import load_spec

    lite0 = load_spec(str(REPO / 'experiments' / 'cifar10lt_if100_lite0.py'))
    ablation = load_spec(
        str(REPO / 'experiments' / 'cifar10lt_if100_lite0_ablation.py')
    )
    ours = {r.name: r for r in ablation.runs}
    theirs = {r.name: r for r in lite0.runs}
    for field in ('config', 'epochs', 'cfg_options', 'test_options'):
        assert getattr(ours['probe'], field) == getattr(
            theirs['probe'], field
        ), field
    assert ours['probe'].stage_one_from is None
    crt = json.loads(
        (
            REPO / 'results/cifar10lt_if100_lite0/selection/crt/selection.json'
        ).read_text()
    )['chosen']['options']
    assert crt['optim_wrapper.optimizer.lr'] == 0.03
    for key, value in crt.items():
        assert ours['crt'].cfg_options[key] == value, key
    assert ours['crt'].config == theirs['crt'].config


def test_ablation_runs_rows_and_crt_filter():
    """``rows`` keeps the named rows in ABLATION_ROWS' order (the stage-one
    run, the defaults and no_kd always), ``crt=None`` leaves cRT out, and
    an unknown row name is refused with the allowed ones."""
    from glag_tools.experiments.ablation_spec import (
        ABLATION_ROWS,
        ablation_runs,
    )

    args = dict(
        config_dir='c/',
        trunk=('t.py', 7),
        defaults='d.py',
        no_kd='n.py',
        more_seeds={'kd_t2': [1]},
    )
    full = ablation_runs(crt=('crt.py', {'train_cfg.max_epochs': 4}), **args)
    assert [r['name'] for r in full] == (
        ['graloss', 'defaults']
        + [row[1] for row in ABLATION_ROWS]
        + ['no_kd', 'crt', 'zero_training']
    )
    assert full[-2]['epochs'] == 4 and full[0]['epochs'] == 7
    short = ablation_runs(crt=None, rows=['kd_t4', 'kd_t2'], **args)
    assert [r['name'] for r in short] == [
        'graloss',
        'defaults',
        'kd_t2',
        'kd_t4',
        'no_kd',
        'zero_training',
    ]
    # the kept rows are the full list's, unchanged
    by_name = {r['name']: r for r in full}
    for run in short:
        assert run == by_name[run['name']]
    assert short[2]['seeds'] == [0, 1]
    with pytest.raises(ValueError, match=r"\['kd_t3'\].*'kd_t2'"):
        ablation_runs(crt=None, rows=['kd_t2', 'kd_t3'], **args)


def test_la_and_short_trunks():
    """The LA ablation retrains experiments/cifar10lt_if100.py's LA run
    (config, epochs) and keeps the GraLoss ablation's cRT row; the short
    KD spec's trunk is graloss_r32_30e.py with the schedule cut to 10
    epochs (warm-up and cosine ending with the run)."""
    from mmengine.config import Config

    from glag_tools.experiments import load_spec

    def runs(name):
        spec = load_spec(str(REPO / 'experiments' / f'{name}.py'))
        return {r.name: r for r in spec.runs}

    la, first = runs('cifar10lt_if100_la_ablation'), runs('cifar10lt_if100')
    assert (la['la'].config, la['la'].epochs) == (
        first['la'].config,
        first['la'].epochs,
    )
    assert la['la'].stage_one_from is None
    assert la['defaults'].stage_one_from == 'la'
    graloss_crt = runs('cifar10lt_if100_ablation')['crt']
    for field in ('config', 'epochs', 'cfg_options', 'seeds'):
        assert getattr(la['crt'], field) == getattr(graloss_crt, field)
    assert la['crt'].cfg_options['optim_wrapper.optimizer.lr'] == 0.03

    short = runs('cifar10lt_if100_kd_short')['graloss']
    assert short.epochs == 10
    cfg = Config.fromfile(REPO / short.config)
    long = Config.fromfile(REPO / first['graloss'].config)
    assert cfg.model == long.model and cfg.train_dataloader == (
        long.train_dataloader
    )
    assert cfg.train_cfg.max_epochs == 10
    warm, cosine = cfg.param_scheduler
    assert (warm.type, warm.begin, warm.end) == ('LinearLR', 0, 1)
    assert warm.start_factor == long.param_scheduler[0].start_factor
    assert (cosine.type, cosine.begin, cosine.end) == (
        'CosineAnnealingLR',
        1,
        10,
    )
    assert cosine.T_max == cosine.end - cosine.begin


@pytest.mark.parametrize(
    'spec_name, shipped',
    [
        (
            'cifar10lt_if100_ablation',
            'configs/experiments/cifar10lt_if100/glag_val_selected_r32_10e.py',
        ),
        (
            'fashionmnistlt_if100_ablation',
            'configs/experiments/fashionmnistlt_if100/ablation/tail_100.py',
        ),
    ],
)
def test_val_selected_rows_have_a_shipped_config(spec_name, shipped):
    """The val-selected GLAG row of a spec is a shipped config: the
    defaults' config with exactly the options the selection record chose
    where they differ from its point 0 (the defaults)."""
    import json

    from mmengine.config import Config

    from glag_tools.experiments import load_spec

    spec_file = REPO / 'experiments' / f'{spec_name}.py'
    runs = {r.name: r for r in load_spec(str(spec_file)).runs}
    defaults_cfg = Config.fromfile(REPO / runs['defaults'].config)
    hooks = [h['type'] for h in defaults_cfg.custom_hooks]
    kd = f'custom_hooks.{hooks.index("GLAGDistillHook")}.'
    record = REPO / 'results' / spec_name / 'selection' / 'glag_wide'
    record = json.loads((record / 'selection.json').read_text())
    first = record['points'][0]['options']
    changed = {
        k.replace('custom_hooks.GLAGDistillHook.', kd): v
        for k, v in record['chosen']['options'].items()
        if first[k] != v
    }
    assert changed, 'the selection chose a point other than the defaults'
    expected = _leaves(defaults_cfg._cfg_dict.to_dict())
    expected.update(changed)
    got = _leaves(Config.fromfile(REPO / shipped)._cfg_dict.to_dict())
    assert got == expected
