"""The demo (tools/demo.py, configs/demo/) and its experiment twins.

The end-to-end test runs every row of the demo on a tiny Fashion-MNIST in
mmpretrain's idx format (a few hundred 28x28 images in tmp_path) and checks
the printed table against the test metrics each run wrote to its work_dir.
The other tests check the configs' structure: each method one line (or the
head line plus the hook lines) away from its baseline, validation on held-out
training images, and the AFG tail split on Fashion-MNIST-LT.
"""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config
from test_tools import write_fashion_mnist

from glag_mm.core.calibration import tail_classes
from glag_mm.datasets import long_tail_counts
from glag_tools.experiments import Context, load_spec, plan_jobs

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / 'configs' / 'demo'
EXPERIMENTS = REPO / 'configs' / 'experiments' / 'fashionmnistlt_if100'
ROW_NAMES = [
    'CE',
    'GraLoss',
    'GALA',
    'FBL',
    'CE + cRT',
    'GraLoss + cRT',
    'GraLoss + LWS',
    'GLAG (GraLoss + AFG + KD)',
]
STAGE_ONE_OF = {
    'CE + cRT': 'CE',
    'GraLoss + cRT': 'GraLoss',
    'GraLoss + LWS': 'GraLoss',
    'GLAG (GraLoss + AFG + KD)': 'GraLoss',
}


def _load_demo():
    spec = importlib.util.spec_from_file_location(
        'demo', REPO / 'tools' / 'demo.py'
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------ the table
def test_format_table():
    demo = _load_demo()
    table = demo.format_table(
        {
            'CE': {
                'lt/top1': 70.94,
                'lt/many': 80.0,
                'lt/medium': 34.25,
                'lt/few': float('nan'),
            },
            'GraLoss': {'lt/top1': 78.3, 'lt/many': 82.1, 'lt/medium': 63.0},
        }
    )
    assert table.splitlines() == [
        '| method | top-1 | many | medium | few |',
        '|---|---:|---:|---:|---:|',
        '| CE | 70.9 | 80.0 | 34.2 | — |',
        '| GraLoss | 78.3 | 82.1 | 63.0 | — |',
    ]


def test_set_data_root_reaches_nested_datasets():
    demo = _load_demo()
    cfg = {
        'train_dataloader': {
            'dataset': {
                'type': 'LongTailDataset',
                'dataset': {'type': 'FashionMNIST', 'data_root': 'a'},
            }
        },
        'val': [{'type': 'FashionMNIST', 'data_root': 'a'}],
        'other': {'type': 'CIFAR10', 'data_root': 'a'},
    }
    demo.set_data_root(cfg, 'b')
    assert cfg['train_dataloader']['dataset']['dataset']['data_root'] == 'b'
    assert cfg['val'][0]['data_root'] == 'b'
    assert cfg['other']['data_root'] == 'a'


def test_rows():
    demo = _load_demo()
    names = [row.name for row in demo.ROWS]
    assert names == ROW_NAMES
    for row in demo.ROWS:
        assert (REPO / row.config).is_file(), row.config
        assert row.stage_one == STAGE_ONE_OF.get(row.name)
        if row.stage_one is not None:  # rows start from earlier rows
            assert row.stage_one in names[: names.index(row.name)]


# ------------------------------------------------------- config structure
def _flat(node, prefix=''):
    """{dotted key: leaf value} of a config dict."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            out.update(_flat(value, f'{prefix}{key}.'))
        return out or {prefix[:-1]: {}}
    return {prefix[:-1]: node}


def _differing_keys(path_a: Path, path_b: Path) -> set:
    a = _flat(Config.fromfile(str(path_a)).to_dict())
    b = _flat(Config.fromfile(str(path_b)).to_dict())
    return {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}


def _top(keys, depth=2) -> set:
    return {'.'.join(k.split('.')[:depth]) for k in keys}


@pytest.mark.parametrize(
    'base, other, allowed',
    [
        (DEMO / 'ce_r8_fmnistlt.py', DEMO / 'gala_r8_fmnistlt.py', {}),
        (DEMO / 'ce_r8_fmnistlt.py', DEMO / 'fbl_r8_fmnistlt.py', {}),
        (DEMO / 'crt_r8_fmnistlt.py', DEMO / 'lws_r8_fmnistlt.py', {}),
        (
            DEMO / 'crt_r8_fmnistlt.py',
            DEMO / 'glag_r8_fmnistlt.py',
            {'custom_hooks'},
        ),
        *[
            (EXPERIMENTS / 'ce_r8.py', EXPERIMENTS / f'{name}_r8.py', {})
            for name in ('la', 'graloss', 'gala', 'fbl')
        ],
        (EXPERIMENTS / 'crt_r8.py', EXPERIMENTS / 'lws_r8.py', {}),
        *[
            (
                EXPERIMENTS / 'crt_r8.py',
                EXPERIMENTS / f'{n}.py',
                {'custom_hooks'},
            )
            for n in ('afg_r8', 'afg_kd_r8')
        ],
    ],
    ids=lambda p: p.name if isinstance(p, Path) else '',
)
def test_methods_differ_only_in_head_and_hooks(base, other, allowed):
    changed = _top(_differing_keys(base, other))
    assert changed <= {'model.head', *allowed}, changed
    assert 'model.head' in changed or 'custom_hooks' in changed


def test_glag_hooks_and_experiment_kd():
    cfg = Config.fromfile(str(DEMO / 'glag_r8_fmnistlt.py'))
    hooks = [h['type'] for h in cfg.custom_hooks]
    assert hooks == [
        'ClassCountsHook',
        'StageOneCheckpointHook',
        'AFGHook',
        'GLAGDistillHook',
    ]
    # the teacher is the run's stage_one_checkpoint (one key)
    assert 'checkpoint' not in cfg.custom_hooks[-1]
    afg = Config.fromfile(str(EXPERIMENTS / 'afg_r8.py'))
    kd = Config.fromfile(str(EXPERIMENTS / 'afg_kd_r8.py'))
    assert [h['type'] for h in afg.custom_hooks] == hooks[:3]
    assert [h['type'] for h in kd.custom_hooks] == hooks
    # the experiments' stage two is the demo's, plus GALA's re-balancing
    changed = _differing_keys(
        DEMO / 'crt_r8_fmnistlt.py', EXPERIMENTS / 'crt_r8.py'
    )
    assert changed == {'test_evaluator.rebalance_tau'}


@pytest.mark.parametrize(
    'path',
    [
        DEMO / 'crt_r8_fmnistlt.py',
        EXPERIMENTS / 'ce_r8.py',
        EXPERIMENTS / 'afg_kd_r8.py',
    ],
    ids=lambda p: p.name,
)
def test_validation_is_held_out_training_images(path):
    cfg = Config.fromfile(str(path))
    val = cfg.val_dataloader.dataset
    assert val.type == 'LongTailDataset' and val.split == 'heldout'
    # the held-out images come from the same long-tailed draw as training
    train = cfg.train_dataloader.dataset
    for key in ('imbalance_factor', 'profile', 'seed'):
        assert val[key] == train[key], key
    # mmpretrain 1.2's FashionMNIST reads the test files when test_mode
    assert (val.dataset.split, val.dataset.test_mode) == ('train', False)
    test = cfg.test_dataloader.dataset
    assert (test.type, test.split, test.test_mode) == (
        'FashionMNIST',
        'test',
        True,
    )
    assert cfg.train_cfg.val_interval <= cfg.train_cfg.max_epochs


def test_afg_tail_split_on_fashion_mnist_lt():
    cfg = Config.fromfile(str(DEMO / 'glag_r8_fmnistlt.py'))
    threshold = cfg.model.head.tail_threshold
    fmnist = long_tail_counts(10, 6000, 100)
    assert fmnist == [6000, 3596, 2156, 1292, 774, 464, 278, 166, 100, 60]
    tail = tail_classes(np.array(fmnist), threshold).tolist()
    assert tail == [False] * 4 + [True] * 6  # four donors, six tail classes
    # the same fraction gives CIFAR-10-LT IF 100 (configs/glag) the same split
    cifar = long_tail_counts(10, 5000, 100)
    assert tail_classes(np.array(cifar), threshold).tolist() == tail
    # the default, the many-shot threshold, would calibrate one class only
    assert tail_classes(np.array(fmnist), 100).sum() == 1


def test_experiment_spec_plans_every_config(tmp_path):
    spec = load_spec(str(REPO / 'experiments' / 'fashionmnistlt_if100.py'))
    ctx = Context(
        root=str(REPO),
        results_dir=str(tmp_path / 'results'),
        work_root=str(tmp_path / 'work'),
    )
    jobs = plan_jobs(spec, ctx)  # also checks each run's stated epochs
    # five stage-one runs; cRT, LWS, AFG, AFG + KD on three trunks; KD alone
    # and the 'stage_one' reference on GraLoss; at 40 epochs cRT, LWS, KD,
    # AFG, AFG + KD on GraLoss and LA + cRT; GLAG's val-selected row at 10 and
    # 40 epochs once its selection is recorded
    glag = {job.run.name for job in jobs} & {'graloss_glag_val'}
    assert len(jobs) == 3 * (5 + 3 * 4 + 2 + 6) + 3 * 2 * bool(glag)
    assert {job.status for job in jobs} == {'new'}
    configs = {job.run.config for job in jobs}
    assert all('fashionmnistlt_if100/' in c for c in configs)
    assert len(configs) == 10  # kd_r8.py: KD alone


# ------------------------------------------------------------ end to end
@pytest.mark.slow
def test_demo_end_to_end_on_tiny_data(tmp_path, capsys):
    demo = _load_demo()
    # the IF-100 profile with n_max = 300 kept by the demo's LongTailDataset,
    # plus 10 images per class (but the largest) left for the held-out split
    counts = long_tail_counts(10, 300, 100)
    counts = [counts[0]] + [n + 10 for n in counts[1:]]
    root = write_fashion_mnist(tmp_path / 'fm', counts, test_per_class=5)
    work = tmp_path / 'work'
    demo.main(['--data-root', root, '--work-dir', str(work)])
    out = capsys.readouterr().out.strip().splitlines()
    assert out[:2] == [
        '| method | top-1 | many | medium | few |',
        '|---|---:|---:|---:|---:|',
    ]
    rows = [line.strip('|').split(' | ') for line in out[2:]]
    assert [r[0].strip() for r in rows] == ROW_NAMES
    for name, *cells in rows:
        row_dir = work / demo._slug(name.strip())
        # the test metrics the run wrote (mmengine's <timestamp>.json)
        (written,) = [
            p
            for p in row_dir.glob('*/*.json')
            if 'lt/top1' in json.loads(p.read_text())
        ]
        metrics = json.loads(written.read_text())
        for cell, key in zip(cells, demo.METRIC_KEYS):
            value = metrics[key]
            # 50 test images: every group is non-empty on the tiny data
            assert not np.isnan(value), (name, key)
            assert float(cell) == pytest.approx(value, abs=0.05 + 1e-6)
            assert 0.0 <= value <= 100.0
    # stage-two rows start from their stage-one row's final checkpoint
    for name, stage_one in STAGE_ONE_OF.items():
        (dumped,) = (work / demo._slug(name)).glob('*_r8_fmnistlt.py')
        checkpoint = work / demo._slug(stage_one) / 'epoch_8.pth'
        assert checkpoint.is_file()
        text = dumped.read_text()
        assert str(checkpoint) in text
        assert '{stage_one_checkpoint}' not in text
