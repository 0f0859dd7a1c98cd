"""tools/select_settings.py: settings chosen on validation, one test run.

The end-to-end test trains a tiny stage one (test_experiments.py's data and
model), then lets the tool choose a cRT learning rate for stage two (0, which
leaves the re-initialised classifier at chance, against a working one) on a
held-out split of the training files, and checks that the working one wins,
that tools/test.py ran once, on its checkpoint, and that the record holds no
test number of the other point.
"""

import importlib.util
import json
import os.path as osp
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config
from test_experiments import STAGE1 as EXPERIMENT_STAGE1
from test_experiments import write_tiny_set
from test_tools import run_tool

from glag_tools import ConfigError
from glag_tools.noise import (
    apply_noise_rule,
    beyond_noise,
    bootstrap_indices,
    criterion_labels,
    paired_bootstrap,
    samples_metric,
)
from glag_tools.selection import (
    check_heldout_validation,
    planned_runs,
    point_options,
    resolve_key,
    search,
)

REPO = Path(__file__).resolve().parents[1]

# Stage one: test_experiments' CifarResNet-8 on its brightness classes, for 8
# epochs; validation (only for the refusal test) on the test files.
STAGE1 = (
    EXPERIMENT_STAGE1
    + """
val_dataloader = test_dataloader
val_evaluator = dict(type='Accuracy', topk=(1,))
test_evaluator = val_evaluator
val_cfg = dict()
train_cfg = dict(by_epoch=True, max_epochs=8, val_interval=8)
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=8),
    logger=dict(type='LoggerHook', interval=5))
"""
)

# Stage two: frozen stage-one trunk, a fresh linear classifier, features
# cached; train on a subset of the training files, validate on the images
# it left out (LongTailDataset's held-out split), test on the test files.
STAGE2 = """
_base_ = ['./stage1.py']
source = dict(type='FashionMNIST', data_root={{_base_.data_root}},
              split='train', download=False,
              pipeline=[dict(type='PackInputs')])
model = dict(type='StageTwoClassifier')
stage_one_checkpoint = None
train_dataloader = dict(dataset=dict(
    _delete_=True, type='LongTailDataset', imbalance_factor=2,
    dataset=source))
val_dataloader = dict(dataset=dict(
    _delete_=True, type='LongTailDataset', imbalance_factor=2,
    split='heldout', heldout_per_class=4, dataset=source))
val_evaluator = dict(_delete_=True, type='LongTailAccuracy',
                     many_threshold=10, few_threshold=6)
test_evaluator = val_evaluator
custom_hooks = [dict(type='ClassCountsHook'),
                dict(type='StageOneCheckpointHook')]
train_cfg = dict(_delete_=True, type='StageTwoTrainLoop', max_epochs=3,
                 val_interval=8)
val_cfg = dict(type='StageTwoValLoop')
"""


def load_tool():
    path = REPO / 'tools' / 'select_settings.py'
    spec = importlib.util.spec_from_file_location('select_settings', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = load_tool()


def write_configs(root: Path) -> dict:
    data_root = write_tiny_set(root / 'fashion', counts=[16] * 10)
    (root / 'stage1.py').write_text(STAGE1.format(data_root=data_root))
    (root / 'stage2.py').write_text(STAGE2)
    return dict(stage1=root / 'stage1.py', stage2=root / 'stage2.py')


def error_of(argv) -> str:
    with pytest.raises(SystemExit) as exit_info:
        tool.main([str(a) for a in argv])
    return str(exit_info.value.code)


@pytest.fixture(scope='module')
def stage_one(tmp_path_factory):
    root = tmp_path_factory.mktemp('select')
    files = write_configs(root)
    done = run_tool(
        'tools/train.py', files['stage1'], '--work-dir', root / 's1'
    )
    assert done.returncode == 0, done.stderr[-3000:]
    checkpoint = (root / 's1' / 'last_checkpoint').read_text().strip()
    return dict(files, root=root, checkpoint=checkpoint)


@pytest.mark.slow
def test_chooses_on_validation_and_tests_the_chosen_point_once(stage_one):
    root, work = stage_one['root'], stage_one['root'] / 'selection'
    done = run_tool(
        REPO / 'tools' / 'select_settings.py',
        stage_one['stage2'],
        '--grid',
        'optim_wrapper.optimizer.lr=0.0,0.05',
        '--cfg-options',
        f'stage_one_checkpoint={stage_one["checkpoint"]}',
        '--work-dir',
        work,
        '--max-runs',
        2,
        cwd=root,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = json.loads((work / 'selection.json').read_text())
    # paths under the working directory are recorded relative to it
    assert str(root) not in (work / 'selection.json').read_text()
    assert record['test']['checkpoint'].startswith('selection/points/001/')
    frozen, trained = record['points']
    assert frozen['options'] == {'optim_wrapper.optimizer.lr': 0.0}
    assert trained['options'] == {'optim_wrapper.optimizer.lr': 0.05}
    # an untrained classifier is near chance, the trained one far above
    assert trained['val']['lt/top1'] > frozen['val']['lt/top1'] + 30
    assert trained['val']['step'] == frozen['val']['step'] == 3
    assert record['chosen'] == dict(
        index=1, options=trained['options'], val=trained['val']['lt/top1']
    )
    # test ran once, on the chosen checkpoint; its numbers are the record's
    test_runs = [
        line
        for log in work.rglob('*.log')
        for line in log.read_text().splitlines()
        if line.startswith('$ ') and 'tools/test.py' in line
    ]
    assert len(test_runs) == 1 and trained['checkpoint'] in test_runs[0]
    assert [p.parent.name for p in work.rglob('test_metrics.json')] == ['test']
    tested = json.loads((work / 'test' / 'test_metrics.json').read_text())
    assert record['test']['checkpoint'] == trained['checkpoint']
    assert record['test']['metrics']['lt/top1'] == tested['lt/top1']
    assert 0 <= tested['lt/top1'] <= 100
    # no test number for the other point, nor anywhere but record['test']
    for point in record['points']:
        assert set(point) == {
            'index', 'choice', 'options', 'val', 'checkpoint', 'config',
            'samples', 'train_seconds', 'noise',
        }  # fmt: skip
        assert all(k.startswith('lt/') for k in point['val'] if k != 'step')
    # the noise: each point's per-image validation labels, compared with
    # the defaults (point 0) on the same images by a paired bootstrap
    samples = [json.loads((root / p['samples']).read_text()) for p in
               record['points']]  # fmt: skip
    images = len(samples[0]['gt'])  # up to 4 held out per class
    assert samples[0]['gt'] == samples[1]['gt'] and 20 < images <= 40
    for point, labels in zip(record['points'], samples):
        right = sum(p == g for p, g in zip(labels['pred'], labels['gt']))
        assert point['val']['lt/top1'] == pytest.approx(right / images * 100)
    expected = paired_bootstrap(
        samples[1]['gt'], samples[1]['pred'], samples[0]['pred'], 'top1'
    )
    assert trained['noise'] == dict(expected, beyond_noise=True)
    assert frozen['noise'] == dict(
        difference=0.0, mean=0.0, interval=[0.0, 0.0], beyond_noise=False
    )
    assert record['noise']['within_noise'] == []
    assert record['noise']['kept_defaults'] is False
    assert record['noise']['best_by_score'] == 1
    assert record['noise']['images'] == images
    # lr 0.0 is not the config's own (0.1 in test_experiments' stage one)
    assert record['noise']['defaults_differ_from_config'] == [
        'optim_wrapper.optimizer.lr'
    ]
    assert (
        'Point 1 beats the defaults beyond the noise'
        in (work / 'selection.md').read_text()
    )
    # the trunk ran once for both points: one cache file per loader
    assert len(list((work / 'feature_cache').glob('*.pth'))) == 2
    budget = record['budget']
    assert budget['training_runs'] == budget['trained_in_this_call'] == 2
    assert budget['max_runs'] == 2
    assert budget['train_seconds'] == pytest.approx(
        frozen['train_seconds'] + trained['train_seconds'], abs=0.01
    )
    assert budget['total_seconds'] == pytest.approx(
        budget['train_seconds'] + budget['test_seconds'], abs=0.01
    )
    assert budget['wall_seconds_of_this_call'] >= budget['total_seconds']
    assert (
        'Test split, chosen point only: lt/top1'
        in (work / 'selection.md').read_text()
    )


@pytest.mark.slow
def test_second_call_reuses_the_trained_points(stage_one, monkeypatch):
    work = stage_one['root'] / 'selection'
    if not (work / 'selection.json').is_file():
        pytest.skip('needs the end-to-end test before it')
    calls, call = [], tool.Selection.call

    def only_test(self, name, argv, log):
        calls.append(name)
        assert name == 'test.py', 'a trained point was trained again'
        return call(self, name, argv, log)

    monkeypatch.setattr(tool.Selection, 'call', only_test)
    monkeypatch.chdir(stage_one['root'])  # as the first call: same record
    before = json.loads((work / 'selection.json').read_text())
    assert tool.main([
        str(stage_one['stage2']), '--grid',
        'optim_wrapper.optimizer.lr=0.0,0.05', '--cfg-options',
        f'stage_one_checkpoint={stage_one["checkpoint"]}',
        '--work-dir', str(work),
    ]) == 0  # fmt: skip
    after = json.loads((work / 'selection.json').read_text())
    assert calls == ['test.py']
    assert after['budget']['trained_in_this_call'] == 0
    assert after['budget']['training_runs'] == 2  # trained in the first
    assert (
        after['budget']['train_seconds'] == before['budget']['train_seconds']
    )
    assert after['points'] == before['points']
    assert after['chosen'] == before['chosen']


def test_refuses_validation_on_the_test_split(tmp_path):
    files = write_configs(tmp_path)
    # stage1.py validates on the test files (val_dataloader = test's)
    message = error_of(
        [files['stage1'], '--grid', 'optim_wrapper.optimizer.lr=0.1,0.2']
    )
    assert 'val_dataloader reads the test split' in message
    assert "split='heldout'" in message
    # the same files named through ann_file are refused as well
    cfg = Config(
        dict(
            val_dataloader=dict(
                dataset=dict(
                    type='CustomDataset',
                    data_root='data/x',
                    ann_file='meta/test.txt',
                )
            ),
            test_dataloader=dict(
                dataset=dict(
                    type='CustomDataset',
                    data_root='data/x/',
                    ann_file='meta/test.txt',
                    test_mode=True,
                )
            ),
            val_cfg=dict(),
        )
    )
    with pytest.raises(ConfigError, match='reads the test split'):
        check_heldout_validation(cfg, 'cfg.py')
    cfg.val_dataloader.dataset.ann_file = 'meta/val.txt'
    check_heldout_validation(cfg, 'cfg.py')  # a separate val list is fine
    # file sets chosen by split / test_mode: any pick of the test files
    test = dict(type='FashionMNIST', data_root='d', split='test')
    cfg.test_dataloader.dataset = dict(test, test_mode=True)
    for val in (
        dict(
            type='FashionMNIST', data_root='d', split='train', test_mode=True
        ),
        dict(type='LongTailDataset', split='heldout', dataset=test),
    ):
        cfg.val_dataloader.dataset = val
        with pytest.raises(ConfigError, match='reads the test split'):
            check_heldout_validation(cfg, 'cfg.py')
    train = dict(type='FashionMNIST', data_root='d', split='train')
    cfg.val_dataloader.dataset = dict(
        type='LongTailDataset', split='heldout', dataset=train
    )
    check_heldout_validation(cfg, 'cfg.py')  # held-out training images
    cfg.val_cfg = None
    with pytest.raises(ConfigError, match='has no validation'):
        check_heldout_validation(cfg, 'cfg.py')


def test_budget_and_options_are_checked_before_training(tmp_path):
    files = write_configs(tmp_path)
    base = [files['stage2'], '--work-dir', tmp_path / 'w']
    grid = ['--grid', 'optim_wrapper.optimizer.lr=0.1,0.2', 'x=1,2']
    message = error_of(base + grid + ['--max-runs', 3])
    assert 'needs 4 training runs, over --max-runs 3' in message
    assert '--search coordinate' in message
    # coordinate search: 1 + (2 - 1) + (2 - 1) runs fit
    message = error_of(
        base + grid + ['--max-runs', 3, '--search', 'coordinate']
    )
    # it got past the budget: the run names the key it misses
    log = message.split('see ')[-1].rstrip(')')
    assert 'set stage_one_checkpoint=PATH' in open(log).read()
    # a hook named by its type must exist in the config
    message = error_of(
        base
        + ['--grid', 'custom_hooks.GLAGDistillHook.temperature=1,2']
        + ['--cfg-options', 'stage_one_checkpoint=' + str(files['stage1'])]
    )
    assert "['ClassCountsHook', 'StageOneCheckpointHook']" in message


def test_hook_keys_resolve_by_type():
    cfg = Config(
        dict(custom_hooks=[dict(type='A'), dict(type='mmpretrain.B', t=1)])
    )
    assert resolve_key(cfg, 'custom_hooks.B.t') == 'custom_hooks.1.t'
    assert resolve_key(cfg, 'custom_hooks.0.t') == 'custom_hooks.0.t'
    assert resolve_key(cfg, 'model.head.lr') == 'model.head.lr'
    axes = [('lr', [0.1, 0.2]), ('epochs', [dict(e=5, t=5), dict(e=9, t=9)])]
    assert point_options(axes, (1, 0)) == dict(lr=0.2, e=5, t=5)


class FakeSelection:
    """Scores from a table; remembers the order points were trained in."""

    def __init__(self, axes, search, table):
        self.settings = dict(axes=axes, search=search)
        self.table, self.order = table, []

    def score(self, choice):
        choice = tuple(choice)
        if choice not in self.order:
            self.order.append(choice)
        return self.table[choice]


def test_search_order_ties_and_coordinate_steps():
    axes = [('a', [0, 1, 2]), ('b', [0, 1])]
    table = {(0, 0): 50, (0, 1): 70, (1, 0): 60, (1, 1): 70}
    table.update({(2, 0): 60, (2, 1): 40})
    grid = FakeSelection(axes, 'grid', table)
    # (0, 1) and (1, 1) tie at 70: the first in grid order wins
    assert search(grid) == (0, 1)
    assert grid.order == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]
    coordinate = FakeSelection(axes, 'coordinate', table)
    # axis a from (0, 0): (1, 0) = 60 beats 50, (2, 0) ties: keep (1, 0);
    # then axis b: (1, 1) = 70 beats 60
    assert search(coordinate) == (1, 1)
    assert coordinate.order == [(0, 0), (1, 0), (2, 0), (1, 1)]
    assert planned_runs(dict(axes=axes, search='coordinate')) == 4
    assert planned_runs(dict(axes=axes, search='grid')) == 6


EXPERIMENTS = REPO / 'configs' / 'experiments'
SHIPPED = [
    (f'{folder}/{config}', spec, runs)
    for folder, suffix in (
        ('fashionmnistlt_if100', 'r8'),
        ('cifar10lt_if100', 'r32_10e'),
        ('cifar10lt_if100_lite0', 'lite0_10e'),
    )
    for config, spec, runs in (
        (f'afg_kd_{suffix}.py', 'glag_stage_two.py', 9),
        (f'afg_kd_{suffix}.py', 'glag_stage_two_wide.py', 9),
        (f'crt_{suffix}.py', 'crt.py', 6),
        (f'lws_{suffix}.py', 'lws.py', 6),
    )
]


@pytest.mark.parametrize('config,spec,runs', SHIPPED)
def test_shipped_selection_specs_apply_to_their_configs(
    config, spec, runs, tmp_path, capsys
):
    checkpoint = tmp_path / 'stage_one.pth'
    checkpoint.write_bytes(b'')  # only its existence is checked here
    spec = REPO / 'experiments' / 'selection' / spec
    argv = [str(EXPERIMENTS / config), '--spec', str(spec), '--cfg-options']
    argv += [f'stage_one_checkpoint={checkpoint}', '--work-dir']
    assert tool.main(argv + [str(tmp_path / 'w'), '--dry-run']) == 0
    out = capsys.readouterr().out
    assert f'{runs} training runs planned' in out
    # the defaults the noise rule keeps are the config's own settings
    assert 'differ from the config' not in out
    settings = tool.load_settings(
        str(spec), cfg_options=dict(stage_one_checkpoint=str(checkpoint))
    )
    assert planned_runs(settings) == runs <= settings['max_runs'] <= 9
    # every value reaches the config the point trains
    cfg = Config.fromfile(str(EXPERIMENTS / config))
    args = tool.parse_args([str(EXPERIMENTS / config), '--work-dir', 'w'])
    selection = tool.Selection(cfg, args, settings)
    own = (cfg.train_cfg.get('cache') or {}).get('cache_dir')
    for name, values in settings['axes']:
        for value in values:
            options = point_options([(name, [value])], [0])
            point = selection.config_of(options)
            for key, expected in options.items():
                node = point
                for part in resolve_key(point, key).split('.'):
                    node = node[int(part) if part.isdigit() else part]
                assert node == expected, key
            # a cache_dir of the config's own is kept (lite0 has one)
            for loop in (point.train_cfg, point.val_cfg):
                assert loop['cache']['cache_dir'] == (
                    own or osp.join(selection.work_dir, 'feature_cache')
                )


def direct_bootstrap(gt, pred, reference, statistic, resamples, seed):
    """paired_bootstrap's numbers by plain loops over the same draws."""

    def score(labels, rows):
        if statistic == 'top1':
            return 100 * sum(labels[i] == gt[i] for i in rows) / len(rows)
        accs = []
        for c in sorted({gt[i] for i in rows}):
            mine = [i for i in rows if gt[i] == c]
            accs.append(100 * sum(labels[i] == c for i in mine) / len(mine))
        return sum(accs) / len(accs)

    whole = range(len(gt))
    diffs = [
        score(pred, rows) - score(reference, rows)
        for rows in bootstrap_indices(len(gt), resamples, seed).tolist()
    ]
    return (
        score(pred, whole) - score(reference, whole),
        sum(diffs) / len(diffs),
        np.percentile(diffs, [2.5, 97.5]).tolist(),
    )


@pytest.mark.parametrize('statistic', ['top1', 'class_mean'])
def test_paired_bootstrap_against_a_direct_computation(statistic):
    rng = np.random.default_rng(3)
    gt = rng.integers(0, 5, 60).tolist()
    pred = [g if rng.random() < 0.7 else int(rng.integers(5)) for g in gt]
    ref = [g if rng.random() < 0.5 else int(rng.integers(5)) for g in gt]
    result = paired_bootstrap(gt, pred, ref, statistic, 200, seed=7)
    difference, mean, interval = direct_bootstrap(
        gt, pred, ref, statistic, 200, 7
    )
    assert result['difference'] == pytest.approx(difference, abs=1e-9)
    assert result['mean'] == pytest.approx(mean, abs=1e-9)
    assert result['interval'] == pytest.approx(interval, abs=1e-9)
    # seeded: the same call gives the same numbers, another seed others
    assert paired_bootstrap(gt, pred, ref, statistic, 200, seed=7) == result
    other = paired_bootstrap(gt, pred, ref, statistic, 200, seed=8)
    assert other['interval'] != result['interval']


def test_identical_predictions_and_a_known_shift():
    gt = [i % 4 for i in range(40)]
    same = paired_bootstrap(gt, gt, gt, 'class_mean', 300)
    assert same == dict(difference=0.0, mean=0.0, interval=[0.0, 0.0])
    assert not beyond_noise(same)
    # the reference misses 10 of 40 images, the point none: +25 points on
    # every draw that holds one of them; always >= 0
    wrong = [(g + 1) % 4 if i < 10 else g for i, g in enumerate(gt)]
    shift = paired_bootstrap(gt, gt, wrong, 'top1', 300)
    assert shift['difference'] == 25.0
    assert shift['mean'] == pytest.approx(25.0, abs=3.0)
    assert 0 < shift['interval'][0] < 25.0 < shift['interval'][1]
    assert beyond_noise(shift)
    # one image of 40 better: within the noise (the interval holds zero)
    one = [(g + 1) % 4 if i == 0 else g for i, g in enumerate(gt)]
    close = paired_bootstrap(gt, gt, one, 'top1', 300)
    assert close['difference'] == 2.5 and close['interval'][0] == 0.0
    assert not beyond_noise(close)
    with pytest.raises(ValueError, match='same images'):
        paired_bootstrap(gt, gt[:-1], gt, 'top1')


def test_criterion_labels_and_the_samples_metric():
    assert criterion_labels('lt/top1') == ('top1', 'pred')
    assert criterion_labels('lt/class_mean_posthoc') == (
        'class_mean',
        'pred_posthoc',
    )
    with pytest.raises(ConfigError, match="'lt/few'.*top1 or class_mean"):
        criterion_labels('lt/few')
    metric = dict(type='LongTailAccuracy')
    assert samples_metric(Config(dict(val_evaluator=metric)), 'c.py') == 0
    cfg = Config(dict(val_evaluator=[dict(type='Accuracy'), metric]))
    assert samples_metric(cfg, 'c.py') == 1
    cfg = Config(dict(val_evaluator=dict(type='Accuracy')))
    with pytest.raises(ConfigError, match='exactly one LongTailAccuracy'):
        samples_metric(cfg, 'c.py')


class SavedPoints:
    """Points with per-image labels on disk, as the tool's records."""

    def __init__(self, root, gt, labels):
        self.settings = dict(axes=[('a', list(labels))], criterion='lt/top1')
        self.points = {}
        for index, pred in enumerate(labels):
            path = root / f'{index}.json'
            path.write_text(json.dumps(dict(gt=gt, pred=pred)))
            right = sum(p == g for p, g in zip(pred, gt))
            self.points[(index,)] = dict(
                index=index,
                samples=str(path),
                val={'lt/top1': 100 * right / len(gt)},
            )


def test_the_defaults_stay_unless_beaten_beyond_the_noise(tmp_path):
    gt = [i % 4 for i in range(40)]
    defaults = [(g + 1) % 4 if i < 10 else g for i, g in enumerate(gt)]
    close = [g if i == 0 else p for i, (g, p) in enumerate(zip(gt, defaults))]
    # point 1: one image better than the defaults (the best score, within
    # the noise); point 2: worse
    worse = [(g + 2) % 4 if i < 20 else g for i, g in enumerate(gt)]
    points = SavedPoints(tmp_path, gt, [defaults, close, worse])
    chosen, record = apply_noise_rule(points, (1,), 300, 0)
    assert chosen == (0,) and record['kept_defaults'] is True
    assert record['best_by_score'] == 1 and record['within_noise'] == [1, 2]
    assert points.points[(1,)]['noise']['difference'] == 2.5
    assert not points.points[(1,)]['noise']['beyond_noise']
    # ten images better: beyond the noise, the best point is chosen
    points = SavedPoints(tmp_path, gt, [defaults, gt, worse])
    chosen, record = apply_noise_rule(points, (1,), 300, 0)
    assert chosen == (1,) and record['kept_defaults'] is False
    assert record['within_noise'] == [2]
    # labels that do not give the logged score are refused
    points.points[(2,)]['val']['lt/top1'] = 99.0
    with pytest.raises(ConfigError, match='not those of the point'):
        apply_noise_rule(points, (1,), 300, 0)
