"""tools/run_experiments.py, tools/make_report.py and glag_tools.experiments.

The end-to-end test trains a stage-one run and a cRT-style stage-two run
on it (CifarResNet-8, 10 + 3 epochs of 122 images) on a tiny long-tailed
set in mmpretrain's Fashion-MNIST idx format (written with the helper of
tests/test_tools.py; a class is the image's brightness, which a pooled CNN
learns in a few steps), then checks the metrics files against a direct
evaluation of the checkpoints.
"""

import ast
import csv
import importlib.util
import json
import math
import os
import os.path as osp
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmpretrain.registry import DATASETS, MODELS
from test_tools import write_idx

from glag_mm.evaluation import reliability_bins
from glag_tools import read_stage_done
from glag_tools.experiments import (
    Context,
    ExperimentError,
    SpecError,
    confidence_spearman,
    format_cfg_options,
    load_records,
    load_spec,
    plan_jobs,
    run_experiment,
    spec_from_dict,
    write_confidence_table,
    write_json,
    write_tables,
)
from glag_tools.experiments import plan as plan_module
from glag_tools.experiments import runner as runner_module
from glag_tools.experiments.plots import confidence_history
from glag_tools.experiments.recording import final_confidence
from glag_tools.experiments.records import pooled_reliability
from glag_tools.experiments.spec import POSTHOC_TAU_FROM_VAL

REPO = Path(__file__).resolve().parents[1]
COUNTS = [30, 24, 18, 14, 10, 8, 6, 5, 4, 3]  # many > 15, few < 6
TEST_PER_CLASS = 3


def write_tiny_set(root: Path, counts=COUNTS) -> str:
    """Train set of ``counts`` images per class, 3 test images per class."""
    rng = np.random.default_rng(0)

    def make(counts):
        labels = np.repeat(np.arange(len(counts)), counts)
        noise = rng.integers(-12, 13, (len(labels), 28, 28))
        images = 20 + 24 * labels[:, None, None] + noise
        return images.clip(0, 255), labels

    write_idx(root, 'train', *make(counts))
    write_idx(root, 'test', *make([TEST_PER_CLASS] * len(counts)))
    return str(root)


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / 'tools' / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


STAGE1 = """
default_scope = 'mmpretrain'
custom_imports = dict(imports=['glag_mm'], allow_failed_imports=False)
data_root = {data_root!r}
model = dict(
    type='ImageClassifier',
    backbone=dict(type='CifarResNet', depth=8, in_channels=1,
                  stage_channels=(4, 8, 16)),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=16,
              loss=dict(type='CrossEntropyLoss'), topk=(1,)))
data_preprocessor = dict(
    num_classes=10, mean=[127.5], std=[127.5], to_rgb=False)
pipeline = [dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=16, num_workers=0,
    dataset=dict(type='FashionMNIST', data_root=data_root, split='train',
                 download=False, pipeline=pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
test_dataloader = dict(
    batch_size=16, num_workers=0,
    dataset=dict(type='FashionMNIST', data_root=data_root, split='test',
                 test_mode=True, download=False, pipeline=pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
test_evaluator = dict(type='LongTailAccuracy', many_threshold=15,
                      few_threshold=6)
test_cfg = dict()
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9))
train_cfg = dict(by_epoch=True, max_epochs=10)
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=1),
    logger=dict(type='LoggerHook', interval=5))
randomness = dict(seed=0)
"""

# cRT-style: frozen trunk from '{stage_one_checkpoint}', head retrained.
STAGE2 = """
_base_ = ['./stage1.py']
model = dict(
    backbone=dict(
        frozen_stages=3,
        init_cfg=dict(type='Pretrained', checkpoint='{stage_one_checkpoint}',
                      prefix='backbone')))
train_cfg = dict(max_epochs=3)
"""

SPEC = """
title = 'tiny'
seeds = [0]
runs = [
    dict(name='ce', label='CE', group='stage one', config={stage1!r},
         epochs=10),
    dict(name='crt', label='CE + cRT', group='stage two', config={stage2!r},
         stage_one_from='ce', baseline='ce',
         cfg_options={{'optim_wrapper.optimizer.lr': 0.02}}),
]
compare = [('ce', 'crt')]
"""


@pytest.fixture(scope='module')
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp('experiments')
    data_root = write_tiny_set(root / 'fashion')
    (root / 'stage1.py').write_text(STAGE1.format(data_root=data_root))
    (root / 'stage2.py').write_text(STAGE2)
    (root / 'tiny.py').write_text(
        SPEC.format(
            stage1=str(root / 'stage1.py'), stage2=str(root / 'stage2.py')
        )
    )
    return root


def context(root: Path) -> Context:
    return Context(
        root=str(REPO),
        results_dir=str(root / 'results' / 'tiny'),
        work_root=str(root / 'work_dirs' / 'tiny'),
    )


def direct_reliability(confidence, correct, bins=15):
    """Counts, mean confidence and accuracy (percent) per bin, by a loop.

    Bin b holds b/B < c <= (b+1)/B (c = 0 in the first bin).
    """
    members = [[] for _ in range(bins)]
    for c, ok in zip(confidence, correct):
        b = min(max(math.ceil(float(c) * bins) - 1, 0), bins - 1)
        members[b].append((float(c), bool(ok)))
    count = [len(m) for m in members]
    conf = [100 * np.mean([c for c, _ in m]) if m else None for m in members]
    acc = [100 * np.mean([ok for _, ok in m]) if m else None for m in members]
    ece = sum(n * abs(a - c) for n, a, c in zip(count, acc, conf) if n) / sum(
        count
    )
    return dict(count=count, confidence=conf, accuracy=acc, ece=ece)


def assert_same_table(found, expected):
    assert found['count'] == expected['count']
    for key in ('confidence', 'accuracy'):
        assert [v is None for v in found[key]] == [
            v is None for v in expected[key]
        ]
        np.testing.assert_allclose(
            [v for v in found[key] if v is not None],
            [v for v in expected[key] if v is not None],
            atol=1e-6,
        )
    assert found['ece'] == pytest.approx(expected['ece'], abs=1e-6)


def direct_evaluation(config: str, checkpoint: str):
    """Per-class test accuracy of a checkpoint, computed here by hand.

    Also returns top-1 accuracy and the reliability table of the top-1
    softmax confidences.
    """
    cfg = Config.fromfile(config)
    model = MODELS.build(
        dict(
            cfg.model,
            data_preprocessor=dict(
                type='ClsDataPreprocessor', **cfg.data_preprocessor
            ),
        )
    )
    state = torch.load(checkpoint, map_location='cpu', weights_only=False)
    model.load_state_dict(state['state_dict'])
    model.eval()
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    batch = pseudo_collate([dataset[i] for i in range(len(dataset))])
    with torch.no_grad():
        samples = model.test_step(batch)
    pred = np.array([int(s.pred_label) for s in samples])
    gt = np.array([int(s.gt_label) for s in samples])
    per_class = np.array(
        [100.0 * np.mean(pred[gt == c] == c) for c in range(len(COUNTS))]
    )
    confidence = [float(s.pred_score.max()) for s in samples]
    reliability = direct_reliability(confidence, pred == gt)
    return per_class, 100.0 * np.mean(pred == gt), reliability


# ------------------------------------------------------------------ spec
def test_spec_validation():
    ok = dict(runs=[dict(name='a', config='a.py')])
    spec = spec_from_dict(ok, 'x')
    assert spec.runs[0].seeds == [0] and spec.runs[0].label == 'a'
    bad = [
        (dict(runs=[dict(name='a b', config='a.py')]), 'run name'),
        (dict(runs=[dict(name='a', config='a.py', foo=1)]), 'unknown keys'),
        (
            dict(runs=[dict(name='a', config='a.py', stage_one_from='z')]),
            "refers to 'z'",
        ),
        (
            dict(
                runs=[
                    dict(name='a', config='a.py', stage_one_from='b'),
                    dict(name='b', config='b.py', stage_one_from='a'),
                ]
            ),
            'cycle',
        ),
        (dict(runs=[dict(name='a', config='a.py', seeds=[1, 1])]), 'repeat'),
        (
            dict(
                runs=[
                    dict(name='a', config='a.py'),
                    dict(name='a', config='b.py'),
                ]
            ),
            'repeat',
        ),
        (
            dict(
                runs=[
                    dict(name='a', config='a.py', cfg_options={'k': {'x': 1}})
                ]
            ),
            'dotted key',
        ),
        (
            dict(
                runs=[
                    dict(
                        name='a',
                        config='a.py',
                        cfg_options={'randomness.seed': 3},
                    )
                ]
            ),
            'seeds=',
        ),
        (dict(runs=[]), 'needs runs'),
        (
            dict(runs=[dict(name='a', config='a.py')], compare=[('a', 'q')]),
            "compare names 'q'",
        ),
    ]
    for data, message in bad:
        with pytest.raises(SpecError, match=message):
            spec_from_dict(data, 'x')


def test_cfg_options_round_trip_through_dict_action():
    from mmengine.config import DictAction

    options = {
        'a.b': 1,
        'c': 0.5,
        'd': 'x/y.py',
        'e': [1, 2],
        'f': True,
        'g': None,
        'h': (3, 4),
    }
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(['--cfg-options', *format_cfg_options(options)])
    assert args.cfg_options == options


# ----------------------------------------------------------------- table
def fake_record(run, seed, top1, many, medium, few, seconds=60.0):
    return dict(
        spec='fake',
        run=run,
        seed=seed,
        top1=top1,
        many=many,
        medium=medium,
        few=few,
        per_class_accuracy=[many, medium, few],
        class_counts=[200, 50, 5],
        many_threshold=100,
        few_threshold=20,
        epochs=3,
        train_seconds=seconds,
        test_seconds=6.0,
        work_dir='nowhere',
    )


def test_table_mean_std_equals_direct_computation(tmp_path):
    spec = spec_from_dict(
        dict(
            title='fake',
            runs=[
                dict(name='ce', label='CE', config='ce.py'),
                dict(
                    name='glag',
                    label='GLAG',
                    config='glag.py',
                    baseline='ce',
                    seeds=[0, 1],
                ),
                dict(name='later', label='Later', config='later.py'),
            ],
        ),
        'fake',
    )
    values = {
        ('ce', 0): (50.0, 80.0, 45.0, 20.0),
        ('glag', 0): (52.5, 70.0, 50.0, 19.0),
        ('glag', 1): (53.5, 71.0, 52.0, 18.0),
    }
    for (run, seed), v in values.items():
        write_json(
            osp.join(tmp_path, 'runs', f'{run}_seed{seed}.json'),
            fake_record(run, seed, *v),
        )
    write_tables(spec, str(tmp_path))
    with open(tmp_path / 'table.csv') as f:
        rows = {r['run']: r for r in csv.DictReader(f)}
    glag = np.array([values['glag', 0], values['glag', 1]])
    for i, col in enumerate(('top1', 'many', 'medium', 'few')):
        assert float(rows['glag'][f'{col}_mean']) == pytest.approx(
            glag[:, i].mean(), abs=1e-4
        )
        assert float(rows['glag'][f'{col}_std']) == pytest.approx(
            glag[:, i].std(ddof=1), abs=1e-4
        )
        assert rows['ce'][f'{col}_std'] == ''  # n = 1
    assert rows['glag']['n'] == '2' and rows['glag']['seeds'] == '0 1'
    assert float(rows['glag']['wall_seconds']) == 2 * (60 + 6)
    # GLAG is below CE on many and few: both marked, nothing else
    assert rows['glag']['not_above_baseline'] == 'many:ce few:ce'
    assert rows['later']['n'] == '0'  # no run dropped
    md = (tmp_path / 'table.md').read_text()
    top1 = glag[:, 0]
    assert f'| GLAG | {top1.mean():.2f} \u00b1 {top1.std(ddof=1):.2f} |' in md
    assert (
        f'{glag[:, 1].mean():.2f} \u00b1 {glag[:, 1].std(ddof=1):.2f} '
        '\u2020' in md
    )
    assert 'GLAG, many: not above CE' in md
    assert 'GLAG, few: not above CE' in md
    assert 'GLAG, top-1' not in md
    assert '| Later | not run |' in md
    total = 3 * 66 / 60
    assert f'Total wall time of the runs above: {total:.1f} min' in md


def test_posthoc_tau_rows_from_the_records(tmp_path):
    """A run whose test applied a val-selected tau gets a second row with
    the *_posthoc accuracies and each seed's tau; other runs get none."""
    spec = spec_from_dict(
        dict(
            title='fake',
            runs=[
                dict(name='ce', label='CE', config='ce.py', seeds=[0, 1]),
                dict(name='crt', label='cRT', config='crt.py'),
            ],
        ),
        'fake',
    )
    posthoc = {0: (1.4, 70.0, 60.0, 90.0), 1: (0.8, 72.0, 61.0, 94.0)}
    for seed, (tau, top1, many, medium) in posthoc.items():
        record = fake_record('ce', seed, 50.0, 80.0, 45.0, None)
        record['metrics'] = {
            'lt/posthoc_tau_selected': tau,
            'lt/top1_posthoc': top1,
            'lt/many_posthoc': many,
            'lt/medium_posthoc': medium,
        }
        write_json(osp.join(tmp_path, 'runs', f'ce_seed{seed}.json'), record)
    write_json(
        osp.join(tmp_path, 'runs', 'crt_seed0.json'),
        fake_record('crt', 0, 55.0, 80.0, 45.0, None),
    )
    write_tables(spec, str(tmp_path))
    md = (tmp_path / 'table.md').read_text()
    top1 = np.array([70.0, 72.0])
    assert (
        '| CE + post-hoc \u03c4 (val-selected: 1.4, 0.8) | '
        f'{top1.mean():.2f} \u00b1 {top1.std(ddof=1):.2f} | 60.50 \u00b1 '
        f'{np.std([60.0, 61.0], ddof=1):.2f} | 92.00 \u00b1 '
        f'{np.std([90.0, 94.0], ddof=1):.2f} | n/a | 2 | 0, 1 |'
    ) in md
    assert md.count('post-hoc') == 1  # none for cRT
    with open(tmp_path / 'table.csv') as f:
        rows = {r['run']: r for r in csv.DictReader(f)}
    assert set(rows) == {'ce', 'ce+posthoc_tau', 'crt'}
    assert float(rows['ce+posthoc_tau']['top1_mean']) == 71.0
    assert float(rows['ce']['top1_mean']) == 50.0


def test_test_options_reach_the_test_command_only(project, tmp_path):
    spec = load_spec(str(project / 'tiny.py'))
    spec.runs[0].test_options = dict(POSTHOC_TAU_FROM_VAL)
    ctx = _repo_context(tmp_path)
    ce, _ = plan_jobs(spec, ctx)
    train = plan_module.train_command(ce, ctx, None, resume=False)
    test = plan_module.test_command(ce, ctx, 'epoch_3.pth', None)
    assert not any('posthoc' in part for part in train)
    assert test[test.index('--cfg-options') :] == [
        '--cfg-options',
        'randomness.seed=0',
        'val_evaluator.posthoc_tau=val',
        'test_evaluator.posthoc_tau=val',
    ]
    with pytest.raises(SpecError, match='bad test_options key'):
        spec_from_dict(
            dict(
                title='t',
                runs=[dict(name='a', config='a.py', test_options={'a b': 1})],
            ),
            't',
        )


# ------------------------------------------------------------ end to end
@pytest.mark.slow
def test_runner_trains_tests_records_and_skips(project, monkeypatch):
    spec = load_spec(str(project / 'tiny.py'))
    ctx = context(project)
    jobs = plan_jobs(spec, ctx)
    assert [(j.title, j.status) for j in jobs] == [
        ('ce seed 0', 'new'),
        ('crt seed 0', 'new'),
    ]
    assert jobs[1].depends_on is jobs[0]
    outcome = run_experiment(spec, ctx, log=lambda _: None)
    assert not outcome['failed'], [j.error for j in outcome['failed']]
    assert len(outcome['finished']) == 2

    records = load_records(ctx.results_dir)
    for name, config in (('ce', 'stage1.py'), ('crt', 'stage2.py')):
        (record,) = records[name]
        assert record['seed'] == 0 and record['class_counts'] == COUNTS
        checkpoint = ctx.path(record['checkpoint'])
        assert osp.isfile(checkpoint)
        # tools/train.py left the stage-finished marker naming it
        done = read_stage_done(ctx.path(record['work_dir']))
        assert ctx.path(done['checkpoint']) == checkpoint
        per_class, top1, reliability = direct_evaluation(
            str(project / config), checkpoint
        )
        np.testing.assert_allclose(
            record['per_class_accuracy'], per_class, atol=1e-6
        )
        assert record['top1'] == pytest.approx(top1, abs=1e-6)
        counts = np.array(COUNTS)
        groups = dict(
            many=counts > 15,
            medium=(counts >= 6) & (counts <= 15),
            few=counts < 6,
        )
        for group, mask in groups.items():
            assert record[group] == pytest.approx(
                per_class[mask].mean(), abs=1e-6
            )
        assert record['metrics']['lt/top1'] == record['top1']
        # the test's reliability table is kept, equal to a direct binning
        assert_same_table(record['metrics']['lt/reliability'], reliability)
        assert sum(reliability['count']) == TEST_PER_CLASS * len(COUNTS)
        assert record['train_seconds'] > 0 and record['test_seconds'] > 0
        assert record['train_attempts'] == 1
        assert len(record['git_commit'] or 'x' * 40) == 40
    assert records['ce'][0]['epochs'] == 10
    assert records['crt'][0]['epochs'] == 3
    # not a degenerate model: some classes right, some wrong
    accs = records['ce'][0]['per_class_accuracy']
    assert 0 < records['ce'][0]['top1'] < 100 and len(set(accs)) > 1
    assert (
        records['crt'][0]['stage_one_checkpoint']
        == (records['ce'][0]['checkpoint'])
    )
    assert records['crt'][0]['cfg_options'] == {
        'optim_wrapper.optimizer.lr': 0.02
    }
    # the stage-two trunk is the stage-one trunk (frozen, loaded)
    ce = torch.load(
        ctx.path(records['ce'][0]['checkpoint']), weights_only=False
    )['state_dict']
    crt = torch.load(
        ctx.path(records['crt'][0]['checkpoint']), weights_only=False
    )['state_dict']
    key = 'backbone.conv1.weight'
    torch.testing.assert_close(ce[key], crt[key])
    table = Path(ctx.results_dir, 'table.md').read_text()
    assert '| CE |' in table and '| CE + cRT |' in table

    # make_report draws the recorded tables: one panel per compared run
    report = load_tool('make_report.py')
    drawn = {}

    def keep(tables, out, title=None):
        drawn.update(plot_reliability(tables, out, title))
        return drawn

    plot_reliability = report.plot_reliability
    monkeypatch.setattr(report, 'plot_reliability', keep)
    written = report.report(spec, ctx.results_dir)
    png = Path(ctx.results_dir, 'reliability.png')
    assert str(png) in written
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert list(drawn) == ['CE (seed 0)', 'CE + cRT (seed 0)']
    for name, panel in zip(('ce', 'crt'), drawn.values()):
        table = records[name][0]['metrics']['lt/reliability']
        filled = [b for b, n in enumerate(table['count']) if n]
        width = 100 / len(table['count'])
        assert panel['centres'] == pytest.approx(
            [(b + 0.5) * width for b in filled]
        )
        assert panel['accuracy'] == [table['accuracy'][b] for b in filled]
        assert panel['confidence'] == [table['confidence'][b] for b in filled]
        total = sum(table['count'])
        assert panel['shares'] == pytest.approx(
            [100 * n / total for n in table['count']]
        )

    # a second call finds everything done and starts no subprocess
    before = {
        p: os.stat(p).st_mtime_ns
        for p in Path(ctx.results_dir, 'runs').iterdir()
    }

    def no_call(*args, **kwargs):
        raise AssertionError('a finished run was started again')

    monkeypatch.setattr(runner_module, '_call', no_call)
    assert [j.status for j in plan_jobs(spec, ctx)] == ['done', 'done']
    outcome = run_experiment(spec, ctx, log=lambda _: None)
    assert outcome == dict(finished=[], failed=[], skipped=[])
    after = {
        p: os.stat(p).st_mtime_ns
        for p in Path(ctx.results_dir, 'runs').iterdir()
    }
    assert before == after

    # the CLI's dry run lists both as done
    tool = load_tool('run_experiments.py')
    code = tool.main(
        [
            str(project / 'tiny.py'),
            '--dry-run',
            '--results-dir',
            ctx.results_dir,
            '--work-root',
            ctx.work_root,
        ]
    )
    assert code == 0


def test_epochs_stated_in_spec_must_match_config(project):
    spec = load_spec(str(project / 'tiny.py'))
    spec.runs[0].epochs = 30
    with pytest.raises(SpecError, match='states epochs=30'):
        plan_jobs(spec, context(project))


SHIPPED_SPECS = sorted((REPO / 'experiments').glob('*.py'))


@pytest.mark.parametrize('path', SHIPPED_SPECS, ids=lambda p: p.stem)
def test_shipped_specs_plan_with_their_options(path, tmp_path):
    spec = load_spec(str(path))
    jobs = plan_jobs(spec, context(tmp_path))  # checks the stated epochs
    assert {j.run.name for j in jobs} == {r.name for r in spec.runs}
    for job in jobs:
        assert job.status != 'missing config', job.run.config
        cfg = job.info.test_cfg
        for key, value in job.run.cfg_options.items():
            got = cfg
            for part in key.split('.'):  # 'custom_hooks.3.x': a position
                got = got[int(part) if part.isdigit() else part]
            assert got == value, (job.title, key)
        if job.run.stage_one_from is not None:
            assert job.depends_on.run.name == job.run.stage_one_from


def _repo_context(tmp_path):
    """The repository's root, results and work dirs under tmp_path."""
    return Context(
        root=str(REPO),
        results_dir=str(tmp_path / 'results'),
        work_root=str(tmp_path / 'work'),
    )


def test_statuses_and_commands_of_interrupted_runs(project, tmp_path):
    spec = load_spec(str(project / 'tiny.py'))
    ctx = _repo_context(tmp_path)
    ce, crt = plan_jobs(spec, ctx)
    assert (ce.status, crt.status) == ('new', 'new')
    cmd = plan_module.train_command(crt, ctx, 'ce.pth', resume=False)
    assert cmd[1:] == [
        osp.join('tools', 'train.py'),
        str(project / 'stage2.py'),
        '--work-dir',
        crt.work_dir,
        '--cfg-options',
        'randomness.seed=0',
        'optim_wrapper.optimizer.lr=0.02',
        'stage_one_checkpoint=ce.pth',
    ]
    # a checkpoint in the work_dir: interrupted, resumed with --resume
    os.makedirs(ce.work_dir)
    Path(ce.work_dir, 'last_checkpoint').write_text('epoch_3.pth')
    # train_done.json: trained, only the test is left
    os.makedirs(crt.work_dir)
    write_json(osp.join(crt.work_dir, 'train_done.json'), {})
    ce, crt = plan_jobs(spec, ctx)
    assert (ce.status, crt.status) == ('partial', 'trained')
    assert '--resume' in plan_module.train_command(ce, ctx, None, True)
    text = plan_module.describe_plan([ce, crt], ctx)
    assert 'interrupted; resume training, then test' in text
    assert 'trained; test only' in text
    # --only crt still schedules (and shows) the stage-one run it needs
    assert [j.title for j in plan_jobs(spec, ctx, only=['crt'])] == [
        'ce seed 0',
        'crt seed 0',
    ]
    with pytest.raises(SpecError, match="no run 'nope'"):
        plan_jobs(spec, ctx, only=['nope'])


def test_record_tested_with_other_test_options_is_tested_again(
    project, tmp_path
):
    """A done record whose test_options differ from the spec's is out of
    date: tested again where the training is still there, else retrained."""
    spec = load_spec(str(project / 'tiny.py'))
    ctx = _repo_context(tmp_path)
    ce, crt = plan_jobs(spec, ctx)
    for job in (ce, crt):  # records from before test_options existed
        record = fake_record(job.run.name, 0, 50.0, 60.0, 40.0, None)
        record.pop('test_options', None)
        write_json(job.metrics_file, record)
    os.makedirs(crt.work_dir)
    write_json(osp.join(crt.work_dir, 'train_done.json'), {})
    assert [j.status for j in plan_jobs(spec, ctx)] == ['done', 'done']
    for run in spec.runs:
        run.test_options = dict(POSTHOC_TAU_FROM_VAL)
    ce, crt = plan_jobs(spec, ctx)
    assert (ce.status, crt.status) == ('new', 'trained')
    record = fake_record('crt', 0, 50.0, 60.0, 40.0, None)
    record['test_options'] = dict(POSTHOC_TAU_FROM_VAL)
    write_json(crt.metrics_file, record)
    assert plan_jobs(spec, ctx)[1].status == 'done'


def test_trained_work_dir_with_other_options_is_refused(project, tmp_path):
    spec = load_spec(str(project / 'tiny.py'))
    ctx = _repo_context(tmp_path)
    _, crt = plan_jobs(spec, ctx)
    os.makedirs(crt.work_dir)
    cmd = plan_module.train_command(crt, ctx, 'ce.pth', resume=True)
    shown = plan_module.shown(cmd, ctx)
    done = dict(checkpoint='epoch_2.pth', command=shown)
    write_json(osp.join(crt.work_dir, 'train_done.json'), done)
    # the same options (a resumed training among them): reused as trained
    assert runner_module._train(crt, ctx, 'ce.pth') == done
    # the spec's options changed since: refused, naming the work_dir
    done['command'] = shown.replace('lr=0.02', 'lr=0.05')
    write_json(osp.join(crt.work_dir, 'train_done.json'), done)
    with pytest.raises(ExperimentError, match='move that work_dir away'):
        runner_module._train(crt, ctx, 'ce.pth')


def test_missing_config_is_reported(project, tmp_path):
    spec = spec_from_dict(
        dict(runs=[dict(name='a', config=str(tmp_path / 'nope.py'))]), 'm'
    )
    ctx = Context(
        root=str(REPO),
        results_dir=str(tmp_path / 'r'),
        work_root=str(tmp_path / 'w'),
    )
    (job,) = plan_jobs(spec, ctx)
    assert job.status == 'missing config'
    with pytest.raises(SpecError, match='do not exist'):
        run_experiment(spec, ctx, log=lambda _: None)
    outcome = run_experiment(spec, ctx, skip_missing=True, log=lambda _: None)
    assert [(j.title, j.error) for j in outcome['skipped']] == [
        ('a seed 0', 'missing config')
    ]


# ---------------------------------------------------------------- report
def fake_checkpoints(work_dir: Path, history):
    work_dir.mkdir(parents=True)
    for epoch, values in enumerate(history, 1):
        torch.save(
            dict(
                state_dict={
                    'head.confidence': torch.tensor(values),
                    'head.fc.weight': torch.zeros(3, 2),
                }
            ),
            work_dir / f'epoch_{epoch}.pth',
        )


def test_confidence_history_reads_epoch_checkpoints(tmp_path):
    history = [[0.6, 0.6, 0.6], [0.6, 0.65, 0.55], [0.6, 0.7, 0.6]]
    fake_checkpoints(tmp_path / 'stage2', history)
    # a stage-one directory without an AFG head is passed over
    (tmp_path / 'stage1').mkdir()
    torch.save(
        dict(state_dict={'head.fc.weight': torch.zeros(1)}),
        tmp_path / 'stage1' / 'epoch_1.pth',
    )
    found = confidence_history(str(tmp_path))
    assert [e for e, _ in found] == [1, 2, 3]
    np.testing.assert_allclose(np.stack([v for _, v in found]), history)
    assert confidence_history(str(tmp_path / 'gone')) == []


def test_make_report_writes_tables_and_pngs(tmp_path, monkeypatch):
    results = tmp_path / 'results'
    spec = dict(
        title='fake',
        seeds=[0],
        runs=[
            dict(name='ce', label='CE', config='ce.py'),
            dict(name='glag', label='GLAG', config='glag.py', baseline=['ce']),
        ],
        compare=[['ce', 'glag']],
    )
    write_json(results / 'fake' / 'spec.json', spec)
    for run, v in (('ce', (50, 80, 45, 20)), ('glag', (52, 79, 50, 30))):
        write_json(
            results / 'fake' / 'runs' / f'{run}_seed0.json',
            fake_record(run, 0, *v),
        )
    tool = load_tool('make_report.py')
    # stand-in for the config check: 'glag' is an AFG run with checkpoints
    work = tmp_path / 'work'
    fake_checkpoints(work / 'stage2', [[0.6] * 3, [0.6, 0.55, 0.65]])
    monkeypatch.setattr(
        tool,
        '_afg_head',
        lambda run, ctx: dict(type='AFGHead') if run.name == 'glag' else None,
    )
    record = json.loads((results / 'fake/runs/glag_seed0.json').read_text())
    record['work_dir'] = str(work)
    write_json(results / 'fake/runs/glag_seed0.json', record)
    assert tool.main(['--results-root', str(results)]) == 0
    for name in (
        'fake/table.md',
        'fake/table.csv',
        'fake/per_class_ce_vs_glag.png',
        'fake/confidence_glag.png',
        'plots/schedules.png',
    ):
        path = results / name
        assert path.is_file() and path.stat().st_size > 200, name
    for png in results.rglob('*.png'):
        assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert 'not above CE' in (results / 'fake/table.md').read_text()
    # records without a reliability table: no diagram
    assert not (results / 'fake/reliability.png').exists()
    # results/*/ also matches the shared plots folder, which is skipped
    every_dir = [str(p) + '/' for p in sorted(results.iterdir())]
    assert [osp.basename(p[:-1]) for p in every_dir] == ['fake', 'plots']
    assert tool.main(['--results-root', str(results), *every_dir]) == 0


def test_make_report_pools_reliability_tables_over_seeds(tmp_path):
    """The diagram's panel of a run is the table of all its seeds' test
    predictions together; runs recorded without a table are left out."""
    rng = np.random.default_rng(0)
    predictions = {}
    results = tmp_path / 'fake'
    for run, seeds in (('ce', (0, 1, 2)), ('glag', (0,))):
        for seed in seeds:
            confidence = rng.uniform(0.1, 1.0, 40 + 10 * seed)
            correct = rng.uniform(size=confidence.size) < confidence
            predictions.setdefault(run, []).append((confidence, correct))
            record = fake_record(run, seed, 50, 60, 50, 40)
            table = reliability_bins(
                torch.from_numpy(confidence), torch.from_numpy(correct)
            )
            record['metrics'] = {'lt/top1': 50.0, 'lt/reliability': table}
            write_json(results / 'runs' / f'{run}_seed{seed}.json', record)
    write_json(  # recorded before tables were kept
        results / 'runs' / 'old_seed0.json', fake_record('old', 0, 1, 1, 1, 1)
    )
    spec = spec_from_dict(
        dict(
            title='fake',
            runs=[
                dict(name=n, label=n.upper(), config=f'{n}.py')
                for n in ('ce', 'glag', 'old')
            ],
            compare=[['old', 'glag'], ['ce', 'glag']],
        ),
        'fake',
    )
    tool = load_tool('make_report.py')
    records = load_records(str(results))
    labels = {'ce': 'CE', 'glag': 'GLAG', 'old': 'OLD'}
    panels = tool.reliability_panels(spec, records, labels)
    assert list(panels) == ['GLAG (seed 0)', 'CE (seeds 0, 1, 2)']
    for name, run in zip(panels, ('glag', 'ce')):
        confidence = np.concatenate([c for c, _ in predictions[run]])
        correct = np.concatenate([ok for _, ok in predictions[run]])
        assert_same_table(
            panels[name], direct_reliability(confidence, correct)
        )
    assert sum(panels['CE (seeds 0, 1, 2)']['count']) == 40 + 50 + 60
    # the pooled ECE is not the mean of the seeds' ECEs
    seed_eces = [r['metrics']['lt/reliability']['ece'] for r in records['ce']]
    assert panels['CE (seeds 0, 1, 2)']['ece'] != pytest.approx(
        np.mean(seed_eces)
    )

    written = tool.report(spec, str(results))
    png = results / 'reliability.png'
    assert str(png) in written
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    # a spec without compare pairs: a panel for every run with a table
    spec.compare = []
    assert list(tool.reliability_panels(spec, records, labels)) == [
        'CE (seeds 0, 1, 2)',
        'GLAG (seed 0)',
    ]
    # tables of different bin counts are refused with the setting to change
    table = records['ce'][0]['metrics']['lt/reliability']
    with pytest.raises(ValueError, match='ece_bins'):
        pooled_reliability([table, dict(table, count=[1] * 10)])


def _ranks(values):
    order = np.argsort(values)
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    return ranks


def test_confidence_spearman_against_direct_ranks(tmp_path):
    """Spearman's rho of (tail count, final s_c) equals Pearson's r of the
    ranks; head classes (null scores) are left out; confidence.md holds the
    per-seed values and their mean over seeds."""
    counts = [1000, 400, 90, 60, 30, 12]
    runs = {
        0: [None, None, 0.5, 0.7, 0.6, 0.9],  # rarer mostly higher
        1: [None, None, 0.9, 0.8, 0.7, 0.6],  # rarer lower: rho = +1
    }
    records = []
    for seed, scores in runs.items():
        record = fake_record('glag', seed, 50, 60, 50, 40)
        record.update(class_counts=counts, final_confidence=scores)
        records.append(record)
    tail = np.array(counts[2:], dtype=float)
    s0 = np.array(runs[0][2:], dtype=float)
    direct = np.corrcoef(_ranks(tail), _ranks(s0))[0, 1]
    assert confidence_spearman(records[0]) == pytest.approx(direct)
    assert direct == pytest.approx(-0.8)
    assert confidence_spearman(records[1]) == pytest.approx(1.0)
    # fewer than three scored classes, or no spread: no correlation
    flat = dict(records[0], final_confidence=[None] * 4 + [0.6, 0.6])
    assert confidence_spearman(flat) is None
    assert confidence_spearman(fake_record('ce', 0, 1, 1, 1, 1)) is None
    spec = spec_from_dict(
        dict(
            title='fake',
            runs=[
                dict(name='ce', label='CE', config='ce.py'),
                dict(name='glag', label='GLAG', config='glag.py'),
            ],
        ),
        'fake',
        'fake.py',
    )
    path = write_confidence_table(
        spec, {'glag': records, 'ce': []}, str(tmp_path / 'confidence.md')
    )
    (row,) = [
        line
        for line in open(path).read().splitlines()
        if line.startswith('| GLAG')
    ]
    assert row.startswith(f'| GLAG | {(-0.8 + 1.0) / 2:+.2f} ± ')
    assert '-0.80, +1.00' in row and '| 0, 1 |' in row
    assert '12: 0.75' in row  # the rarest class's mean final s_c
    assert write_confidence_table(spec, {}, str(tmp_path / 'x.md')) is None
    # only the named runs (make_report: those whose head generates)
    only_ce = str(tmp_path / 'ce.md')
    assert (
        write_confidence_table(spec, {'glag': records}, only_ce, ['ce'])
        is None
    )


def test_record_keeps_the_last_logged_confidence(tmp_path):
    """final_confidence is the s_c of the last update AFGHook logged (a
    resumed run's later lines win); runs without AFG scalars give None."""
    log = tmp_path / '20260101_000000' / 'vis_data' / 'scalars.json'
    log.parent.mkdir(parents=True)
    lines = [
        {'afg/confidence_updates': 1, 'afg/s_c/2': 0.6, 'afg/s_c/3': 0.6},
        {'loss': 1.0, 'step': 5},
        {'afg/confidence_updates': 2, 'afg/s_c/2': 0.65, 'afg/s_c/3': 0.5},
    ]
    log.write_text('\n'.join(json.dumps(x) for x in lines) + '\n')
    scores = final_confidence(str(tmp_path))
    assert scores[2:] == [0.65, 0.5] and all(math.isnan(v) for v in scores[:2])
    assert final_confidence(str(tmp_path / 'gone')) is None


def _imports_and_path_edits(source: Path):
    """Absolute top-level module names a file imports, and whether it
    edits ``sys.path``."""
    tree = ast.parse(source.read_text())
    names, edits = set(), False
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split('.')[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names.add(node.module.split('.')[0])
        elif isinstance(node, ast.Attribute) and node.attr == 'path':
            edits |= getattr(node.value, 'id', None) == 'sys'
    return names, edits


def test_one_direction_between_tools_and_experiments():
    """experiments/ (the specs) may import the tools' library glag_tools;
    nothing in tools/ imports ``experiments``, nothing imports ``tools`` as
    a package, and neither folder edits sys.path to reach the other."""
    found = {}
    for folder in ('tools', 'experiments'):
        for source in sorted((REPO / folder).rglob('*.py')):
            names, edits = _imports_and_path_edits(source)
            found[source.relative_to(REPO).as_posix()] = (names, edits)
    assert 'tools/glag_tools/experiments/plan.py' in found
    cross = {
        path: sorted(names & {'experiments', 'tools'})
        for path, (names, _) in found.items()
        if (path.startswith('tools/') and 'experiments' in names)
        or 'tools' in names
    }
    assert not cross
    assert not [path for path, (_, edits) in found.items() if edits]
    # the direction that is allowed is used: specs import the library
    assert 'glag_tools' in found['experiments/fashionmnistlt_if100.py'][0]


def test_cross_import_scan_catches_one(tmp_path):
    bad = tmp_path / 'bad.py'
    bad.write_text(
        'import sys\nsys.path.insert(0, "..")\nfrom experiments.x import y\n'
    )
    assert _imports_and_path_edits(bad) == ({'sys', 'experiments'}, True)
