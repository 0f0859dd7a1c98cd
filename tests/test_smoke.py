"""tools/train.py --smoke, per-stage --cfg-options and --threads.

The rehearsal runs the shipped two-stage config
configs/glag_r32_cifar10lt_if100.py on tiny CIFAR-10 pickles (in
``data/cifar10`` under a temporary working directory, where its relative
data_root points), in-process so the pickles' checksum check can be skipped.
"""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmpretrain.datasets import CIFAR10
from test_configs import write_cifar
from test_tools import write_fashion_mnist

from glag_tools import read_stage_done
from glag_tools.rehearsal import (
    set_threads,
    smoke_config,
    split_stage_options,
)

REPO = Path(__file__).resolve().parents[1]


def _train_tool(name='train.py'):
    spec = importlib.util.spec_from_file_location(
        f'glag_tool_{name[:-3]}', REPO / 'tools' / name
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_split_stage_options():
    common, per_stage = split_stage_options(
        {
            'stage2.model.head.alpha': 0.1,
            'stage1.train_cfg.max_epochs': 3,
            'train_dataloader.batch_size': 8,
            'stage3.x': 1,  # not a stage: applies everywhere
        },
        {'stage1', 'stage2'},
    )
    assert per_stage == {
        'stage2': {'model.head.alpha': 0.1},
        'stage1': {'train_cfg.max_epochs': 3},
    }
    assert common == {'train_dataloader.batch_size': 8, 'stage3.x': 1}


def test_smoke_config_shrinks_a_stage():
    cfg = Config.fromfile(
        str(REPO / 'configs/glag/afg_r32_cifar10lt_if100.py')
    )
    smoke_config(cfg, images=64, iters=3)
    train = cfg.train_dataloader.dataset
    assert train.type == 'SmokeSubset' and train.per_class and train.num == 64
    assert train.dataset.type == 'LongTailDataset'
    assert cfg.val_dataloader.dataset.type == 'SmokeSubset'
    assert cfg.val_dataloader.dataset.min_per_class == 1
    assert (cfg.train_cfg.max_epochs, cfg.train_cfg.val_interval) == (1, 1)
    assert cfg.default_hooks.checkpoint.interval == 1
    assert cfg.custom_hooks[-1] == dict(type='SmokeTestHook')
    iter_cfg = Config(
        dict(
            train_cfg=dict(by_epoch=False, max_iters=1000, val_interval=100),
            model=dict(head=dict(type='AFGHead', tail_threshold=100)),
        )
    )
    smoke_config(iter_cfg, iters=3)
    assert iter_cfg.train_cfg.max_iters == 3
    assert iter_cfg.train_cfg.val_interval == 3
    assert iter_cfg.model.head.tail_threshold == 0.5


@pytest.mark.slow
def test_smoke_two_stage_config(tmp_path, monkeypatch):
    monkeypatch.setattr(CIFAR10, '_check_integrity', lambda self: True)
    write_cifar(tmp_path / 'data' / 'cifar10', 10)  # 200 ... 20 per class
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # --threads 1 must change it
    config = REPO / 'configs' / 'glag_r32_cifar10lt_if100.py'
    try:
        _train_tool().main(
            [
                str(config),
                '--smoke',
                '--threads',
                '1',
                '--cfg-options',
                'train_dataloader.num_workers=0',
                'val_dataloader.num_workers=0',
                'test_dataloader.num_workers=0',
                'stage2.model.head.alpha=0.1',
            ]
        )
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    work_dir = tmp_path / 'work_dirs' / 'glag_r32_cifar10lt_if100_smoke'
    assert not (tmp_path / 'work_dirs' / 'glag_r32_cifar10lt_if100').exists()
    logs = {}
    for stage in ('stage1', 'stage2'):
        done = read_stage_done(str(work_dir / stage))
        assert done['epoch'] == 1
        assert Path(done['checkpoint']).is_file()
        logs[stage] = next((work_dir / stage).glob('*/*.log')).read_text()
        # about 256 of the long-tailed subset's images, every class kept
        assert 'class counts: 10 classes, ' in logs[stage]
        line = logs[stage].split('class counts: 10 classes, ')[1]
        assert 200 <= int(line.split(' images')[0]) <= 300
        assert 'Epoch(val) [1]' in logs[stage]
        assert 'smoke test metrics' in logs[stage]
    assert 'Epoch(train) [1][3/3]' in logs['stage1']  # 261 images, 128
    assert 'AFGHook: statistics of' in logs['stage2']
    # the per-stage option reached stage two only
    dumped = {
        stage: Config.fromfile(
            str(next((work_dir / stage).glob('*/vis_data/config.py')))
        )
        for stage in ('stage1', 'stage2')
    }
    assert dumped['stage2'].model.head.alpha == 0.1
    assert 'alpha' not in dumped['stage1'].model.head
    # stage two started from the smoke stage one
    stage_one = read_stage_done(str(work_dir / 'stage1'))['checkpoint']
    assert dumped['stage2'].stage_one_checkpoint == stage_one
    scalars = next((work_dir / 'stage2').glob('*/vis_data/scalars.json'))
    assert json.loads(scalars.read_text().splitlines()[0])


def test_threads_option():
    for tool, extra in (('train.py', []), ('test.py', ['ckpt.pth'])):
        args = _train_tool(tool).parse_args(
            ['cfg.py', *extra, '--threads', '3']
        )
        assert args.threads == 3
    threads = torch.get_num_threads()
    try:
        set_threads(3)
        assert torch.get_num_threads() == 3
        set_threads(None)  # unchanged
        assert torch.get_num_threads() == 3
        with pytest.raises(ValueError, match='--threads must be >= 1'):
            set_threads(0)
    finally:
        torch.set_num_threads(threads)


def test_smoke_subset_keeps_every_class(tmp_path):
    import numpy as np
    from mmpretrain.datasets import FashionMNIST

    from glag_tools.smoke import SmokeSubset

    counts = [100, 60, 40, 20, 10, 5, 3, 2, 1, 1]
    root = write_fashion_mnist(tmp_path / 'fashion', counts)
    full = FashionMNIST(data_root=root, download=False, pipeline=[])
    subset = SmokeSubset(full, num=50, per_class=True, min_per_class=2)
    # min(n_c, max(2, ceil(50 / 242 * n_c)))
    expected = [21, 13, 9, 5, 3, 2, 2, 2, 1, 1]
    assert subset.metainfo['class_counts'] == expected
    labels = full.get_gt_labels()
    kept = [int(subset._indices[i]) for i in range(len(subset))]
    first = sorted(
        i
        for c, k in enumerate(expected)
        for i in np.flatnonzero(labels == c)[:k]
    )
    assert kept == first  # the first images of each class
    head = SmokeSubset(full, num=7)
    assert len(head) == 7 and head.get_gt_labels().tolist() == [0] * 7
