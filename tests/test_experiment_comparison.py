"""The comparison table of ``ablation.md`` (the val-selected GLAG row
against the simpler rows), test-only runs and the selected settings'
reader, against direct computations on small synthetic records."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from glag_mm.evaluation.bootstrap import paired_bootstrap
from glag_tools.experiments import (
    Context,
    SpecError,
    plan_jobs,
    spec_from_dict,
    write_ablation_table,
    write_json,
)
from glag_tools.experiments import runner as runner_module
from glag_tools.experiments.comparison import comparison_rows
from glag_tools.experiments.spec import chosen_settings

REPO = Path(__file__).resolve().parents[1]
COUNTS = [500, 120, 30]
N = 120  # validation images


def _spec(selected=True):
    names = ['no_kd', 'crt'] + (['selected'] if selected else [])
    runs = [dict(name='graloss', config='g.py')]
    runs.append(dict(name='defaults', config='d.py'))
    runs += [
        dict(name=n, config=f'{n}.py', baseline='defaults') for n in names
    ]
    runs.append(
        dict(
            name='zero_training',
            config='g.py',
            stage_one_from='graloss',
            test_only=True,
        )
    )
    return spec_from_dict(dict(title='T', runs=runs), 't')


def _record(run, seed, gt, accuracy, rng, top1, extra=None):
    def labels(p):
        return np.where(rng.random(N) < p, gt, (gt + 1) % 3).tolist()

    samples = dict(gt=gt.tolist(), pred=labels(accuracy))
    metrics = {'lt/ece': 3.0 + seed}
    if extra:
        samples.update(pred_posthoc=labels(0.8), pred_tau_norm=labels(0.7))
        metrics.update(extra)
    return dict(
        run=run,
        seed=seed,
        top1=top1,
        many=80.0 + seed,
        medium=60.0,
        few=None,
        per_class_accuracy=[90.0, 70.0, 10.0 * (seed + 1)],
        class_counts=COUNTS,
        metrics=metrics,
        validation=dict(top1=0.0, samples=samples),
    )


def _records(selected=True):
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 3, N)
    records = {}
    names = [('defaults', 0.6, 60.0), ('no_kd', 0.65, 61.0), ('crt', 0.5, 58)]
    if selected:
        names.append(('selected', 0.75, 63.0))
    for name, accuracy, top1 in names:
        records[name] = [
            _record(name, s, gt, accuracy, rng, top1 + s) for s in (0, 1, 2)
        ]
    extra = {
        'lt/top1_posthoc': 64.5,
        'lt/many_posthoc': 70.0,
        'lt/medium_posthoc': 66.0,
        'lt/top1_tau_norm': 62.0,
        'lt/many_tau_norm': 75.0,
        'lt/medium_tau_norm': 61.0,
    }
    records['zero_training'] = [
        _record('zero_training', 0, gt, 0.55, rng, 57.0, extra)
    ]
    return records


def test_comparison_rows_against_direct_computation():
    records = _records()
    rows = comparison_rows(_spec(), records, resamples=200, seed=3)
    assert [(r['run'], r['label']) for r in rows] == [
        ('selected', 'GLAG, val-selected'),
        ('defaults', 'GLAG, defaults'),
        ('no_kd', 'AFG alone (no KD)'),
        ('crt', 'cRT, val-selected'),
        ('zero_training', 'stage one + post-hoc τ (val)'),
        ('zero_training', 'stage one + τ-norm (val)'),
    ]
    ref = records['selected']
    for row in rows:
        assert row['seeds'] == [0, 1, 2]
        if row['label'].startswith('stage one'):  # one value per trunk
            key = 'posthoc' if 'post-hoc' in row['label'] else 'tau_norm'
            (mine,) = records['zero_training']
            mine, pred_key = [mine], f'pred_{key}'
            top1 = [mine[0]['metrics'][f'lt/top1_{key}']]
            many = [mine[0]['metrics'][f'lt/many_{key}']]
            assert row['rarest class'] == row['ECE'] == [None]
            assert row['own_seeds'] == [0]
        else:
            mine, pred_key = records[row['run']], 'pred'
            top1, many = [r['top1'] for r in mine], [r['many'] for r in mine]
            assert row['rarest class'] == [10.0, 20.0, 30.0]
            assert row['ECE'] == [3.0, 4.0, 5.0]
        gt = [r['validation']['samples']['gt'] for r in mine]
        pred = [r['validation']['samples'][pred_key] for r in mine]
        direct = [100 * np.mean(np.equal(g, p)) for g, p in zip(gt, pred)]
        np.testing.assert_allclose(row['validation'], direct)
        assert row['test'] == top1 and row['many'] == many
        if row['run'] == 'selected':
            assert row['comparison'] is None
            continue
        paired = 3 // len(mine)  # a test-only row pairs with every seed
        np.testing.assert_allclose(
            row['test_difference'],
            [t - r['top1'] for t, r in zip(top1 * paired, ref)],
        )
        flat = sum(gt * paired, [])
        mine_flat = sum(pred * paired, [])
        ref_flat = sum((r['validation']['samples']['pred'] for r in ref), [])
        expected = paired_bootstrap(flat, mine_flat, ref_flat, 'top1', 200, 3)
        assert row['comparison']['interval'] == expected['interval']
        hits = (
            np.equal(flat, mine_flat).mean() - np.equal(flat, ref_flat).mean()
        )
        assert row['comparison']['difference'] == pytest.approx(100 * hits)
        low, high = expected['interval']
        verdict = 'better' if low > 0 else 'worse' if high < 0 else 'within'
        assert row['comparison']['verdict'] == verdict


def test_kept_defaults_are_the_val_selected_row(tmp_path):
    records = _records(selected=False)
    spec = _spec(selected=False)
    rows = comparison_rows(spec, records, resamples=50)
    assert [r['run'] for r in rows] == [
        'defaults',
        'no_kd',
        'crt',
        'zero_training',
        'zero_training',
    ]
    assert rows[0]['label'].endswith('(= defaults: the selection kept them)')
    # the markdown: below the ablation table, one line per row
    path = tmp_path / 'ablation.md'
    write_ablation_table(spec, records, str(path), resamples=50)
    text = path.read_text().split('## The val-selected GLAG row')[1]
    lines = [x for x in text.splitlines() if x.startswith('| ')][1:]
    assert len(lines) == 5
    cells = lines[4].split(' | ')
    assert cells[0] == '| stage one + τ-norm (val)'
    assert cells[1] == 'zero_training (0; paired with 0,1,2)'
    assert cells[5] == '62.00'  # lt/top1_tau_norm, one value per trunk
    diffs = [62.0 - 60.0 - s for s in (0, 1, 2)]
    assert cells[6] == f'{np.mean(diffs):+.2f} ± {np.std(diffs, ddof=1):.2f}'
    assert cells[9:] == ['–', '– |']
    # no selection record beside ablation.md: the defaults only stand in
    assert 'none ran on this trunk, so the defaults stand in' in lines[0]
    record = tmp_path / 'selection' / 'glag_wide' / 'selection.json'
    record.parent.mkdir(parents=True)
    record.write_text('{}')
    write_ablation_table(spec, records, str(path), resamples=50)
    text = path.read_text().split('## The val-selected GLAG row')[1]
    assert '(= defaults: the selection kept them)' in text
    assert 'none ran on this trunk' not in text
    # without the defaults' records there is no table
    del records['defaults']
    assert comparison_rows(spec, records) == []
    # nor where the spec has a val-selected run without records yet
    records = _records(selected=False)
    assert comparison_rows(_spec(selected=True), records) == []


def test_test_only_run_tests_the_stage_one_checkpoint(tmp_path, monkeypatch):
    config = tmp_path / 'net.py'
    config.write_text(
        "custom_hooks = [dict(type='ClassCountsHook', class_counts=[5, 3])]\n"
        'train_cfg = dict(max_epochs=2)\n'
    )
    samples = {'val_evaluator.samples_file': '{work_dir}/val.json'}
    spec = spec_from_dict(
        dict(
            runs=[
                dict(name='one', config=str(config)),
                dict(
                    name='tau',
                    config=str(config),
                    stage_one_from='one',
                    test_only=True,
                    cfg_options=samples,
                    test_options={'model.head.type': 'TauNormHead'},
                ),
            ]
        ),
        't',
    )
    ctx = Context(
        root=str(REPO),
        results_dir=str(tmp_path / 'results'),
        work_root=str(tmp_path / 'work'),
    )
    one, tau = plan_jobs(spec, ctx)
    assert (one.status, tau.status) == ('new', 'trained')
    # the stage-one run is trained and tested already
    os.makedirs(one.work_dir)
    checkpoint = os.path.join(one.work_dir, 'epoch_2.pth')
    write_json(
        os.path.join(one.work_dir, 'train_done.json'),
        dict(checkpoint=checkpoint, seconds=1.0, attempts=1, command='x'),
    )
    Path(checkpoint).write_bytes(b'')
    calls = []

    def fake_call(cmd, log, ctx):
        calls.append(cmd)
        assert cmd[1].endswith('test.py'), 'a test-only run trained'
        out = cmd[cmd.index('--out') + 1]
        write_json(out, {'lt/top1': 40.0, 'lt/per_class': [50.0, 30.0]})
        write_json(
            os.path.join(tau.work_dir, 'val.json'),
            dict(gt=[0, 1, 1, 0], pred=[0, 1, 0, 0], confidence=[1] * 4),
        )
        return 0, 2.0

    monkeypatch.setattr(runner_module, '_call', fake_call)
    record = runner_module.run_job(tau, ctx, 't')
    (cmd,) = calls
    assert cmd[2:4] == [str(config), checkpoint]
    assert not any('stage_one_checkpoint' in part for part in cmd)
    assert 'model.head.type=TauNormHead' in cmd
    assert record['checkpoint'] == checkpoint
    assert record['stage_one_checkpoint'] is None
    assert (record['train_seconds'], record['train_attempts']) == (0.0, 0)
    assert record['command']['train'] is None
    assert record['validation']['top1'] == pytest.approx(75.0)
    assert record['class_counts'] == [5, 3]


def test_test_only_needs_a_stage_one_run():
    for bad in (dict(test_only=True), dict(test_only='yes')):
        with pytest.raises(SpecError, match='test_only must be True'):
            spec_from_dict(
                dict(runs=[dict(name='a', config='a.py', **bad)]), 's'
            )


def test_chosen_settings_unless_defaults(tmp_path):
    spec_file = tmp_path / 'experiments' / 'x.py'
    folder = tmp_path / 'results' / 'x' / 'selection' / 'm'
    folder.mkdir(parents=True)
    assert chosen_settings(str(spec_file), 'm') == {}
    key = 'custom_hooks.GLAGDistillHook.beta_max'
    record = dict(
        chosen=dict(index=4, options={key: 0.0, 'model.head.x': 1}),
        noise=dict(defaults=0),
    )
    (folder / 'selection.json').write_text(json.dumps(record))
    hooks = {'GLAGDistillHook': 3}
    expected = {'custom_hooks.3.beta_max': 0.0, 'model.head.x': 1}
    for unless in (False, True):
        found = chosen_settings(str(spec_file), 'm', hooks, unless)
        assert found == expected
    record['chosen']['index'] = 0  # the noise rule kept the defaults
    (folder / 'selection.json').write_text(json.dumps(record))
    assert chosen_settings(str(spec_file), 'm', hooks, True) == {}
    assert chosen_settings(str(spec_file), 'm', hooks) == expected
