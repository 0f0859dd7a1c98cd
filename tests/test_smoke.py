"""tools/train.py --smoke, per-stage --cfg-options and --threads.

The rehearsal runs the shipped two-stage config
configs/glag_r32_cifar10lt_if100.py on tiny CIFAR-10 pickles (in
``data/cifar10`` under a temporary working directory, where its relative
data_root points), in-process so the pickles' checksum check can be skipped.
"""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from imagenet_lt_standin import (
    formula_counts,
    imagenet_lt_counts,
    write_imagenet_lt,
)
from mmengine.config import Config
from mmpretrain.datasets import CIFAR10
from mmpretrain.registry import DATASETS
from test_configs import write_cifar
from test_tools import write_fashion_mnist

from glag_mm.core.calibration import check_generation_setup, tail_classes
from glag_mm.evaluation.functional import shot_groups
from glag_tools import read_stage_done
from glag_tools.rehearsal import (
    rescale_pipelines,
    set_threads,
    smoke_config,
    smoke_counts,
    split_stage_options,
)
from glag_tools.smoke import rehearsal_counts

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


def test_smoke_config_shrinks_a_stage(tmp_path, monkeypatch):
    monkeypatch.setattr(CIFAR10, '_check_integrity', lambda self: True)
    write_cifar(tmp_path / 'data' / 'cifar10', 10)  # 200 ... 20 per class
    monkeypatch.chdir(tmp_path)  # the relative data_root
    cfg = Config.fromfile(
        str(REPO / 'configs/glag/afg_r32_cifar10lt_if100.py')
    )
    smoke_config(cfg, images=64, iters=3)
    assert cfg.val_dataloader.dataset.type == 'SmokeSubset'
    assert cfg.val_dataloader.dataset.min_per_class == 1
    assert (cfg.train_cfg.max_epochs, cfg.train_cfg.val_interval) == (1, 1)
    assert cfg.default_hooks.checkpoint.interval == 1
    assert cfg.custom_hooks[-1] == dict(type='SmokeTestHook')
    train = cfg.train_dataloader.dataset
    assert train.type == 'SmokeSubset' and len(train.counts) == 10
    # CIFAR's 32-pixel crops are small already
    stage_one = Config.fromfile(
        str(REPO / 'configs/graloss/graloss_r32_cifar10lt_if100.py')
    )
    assert rescale_pipelines(stage_one) == 1.0
    crop = stage_one.train_dataloader.dataset.dataset.pipeline[0]
    assert (crop.type, crop.crop_size, crop.padding) == ('RandomCrop', 32, 4)
    iter_cfg = Config(
        dict(train_cfg=dict(by_epoch=False, max_iters=1000, val_interval=100))
    )
    smoke_config(iter_cfg, iters=3)
    assert iter_cfg.train_cfg.max_iters == 3
    assert iter_cfg.train_cfg.val_interval == 3


def test_rehearsal_counts_keep_every_rule():
    """n < b exactly when s(n) < s(b), for every breakpoint b."""
    rng = np.random.default_rng(0)
    for _ in range(40):
        counts = rng.integers(1, 300, size=rng.integers(2, 30)).tolist()
        points = rng.integers(1, 320, size=rng.integers(1, 4)).tolist()
        images = int(rng.integers(0, 600))
        kept, scale = rehearsal_counts(counts, points + [2], images)
        assert kept == [scale(n) for n in counts]
        assert all(1 <= k <= n for k, n in zip(kept, counts))
        for b in points + [2]:
            for n in range(1, 330):
                assert (n < b) == (scale(n) < scale(b)), (b, n)
        if sum(min(n, 3 * (1 + len(set(points) | {2}))) for n in counts):
            assert sum(kept) <= max(images, sum(scale(n) for n in counts))
    # ImageNet-LT's rules (tail < 100, covariance < 2), no image floor:
    # 2 images below 100, 3 from 100 up, 1 for a single image
    counts = [1, 5, 99, 100, 1280]
    kept, scale = rehearsal_counts(counts, [100, 2], 0)
    assert kept == [1, 2, 2, 3, 3] and scale(100) == 3
    kept, _ = rehearsal_counts(counts, [100, 2], 21)  # twice as many
    assert kept == [1, 4, 4, 6, 6]
    assert rehearsal_counts(counts, [100, 2], 20)[0] == [1, 2, 2, 3, 3]


def _imagenet_lt_options(root):
    return {
        f'{field}.dataset.data_root': root
        for field in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    }


def test_smoke_config_on_imagenet_lt_counts(tmp_path):
    """Stage two of the main config on 1,000 classes of ImageNet-LT's
    counts: options address the config as written, 32-pixel images, the
    model and the stage-two settings of the real run on a few images."""
    counts = imagenet_lt_counts() or formula_counts()
    root = write_imagenet_lt(tmp_path / 'imagenet', counts)
    path = str(REPO / 'configs/glag/afg_r50_imagenetlt.py')
    real = Config.fromfile(path)
    cfg = Config.fromfile(path)
    cfg.merge_from_dict(_imagenet_lt_options(root))
    smoke_config(cfg)
    assert cfg.model.backbone == real.model.backbone  # ResNet-50 as it is
    train = cfg.train_dataloader.dataset
    assert train.type == 'SmokeSubset' and train.dataset.data_root == root
    # the stage-two training pipeline (the test one) at 32 pixels
    types = {t.type: t for t in train.dataset.pipeline}
    assert types['ResizeEdge'].scale == 37  # 256 * 32 / 224
    assert types['CenterCrop'].crop_size == 32
    val_types = {
        t.type: t for t in cfg.val_dataloader.dataset.dataset.pipeline
    }
    assert val_types['CenterCrop'].crop_size == 32
    # the real tail threshold (100 images), in the kept counts' scale
    kept = train.counts
    threshold = cfg.model.head.tail_threshold
    assert isinstance(threshold, int) and 1 <= threshold <= 100
    assert torch.equal(
        tail_classes(torch.tensor(kept), threshold),
        tail_classes(torch.tensor(counts), 100),
    )
    assert check_generation_setup(kept, threshold) == []  # tail classes
    assert check_generation_setup(counts, 100) == []
    assert 2000 <= sum(kept) <= 3100  # 2 or 3 per class
    # many / medium / few of the real counts, each group with classes
    assert cfg.val_evaluator.class_counts == counts
    assert all(bool(m.any()) for m in shot_groups(counts).values())
    dataset = DATASETS.build(train)
    assert dataset.metainfo['class_counts'] == kept
    val = DATASETS.build(cfg.test_dataloader.dataset)
    assert val.metainfo['class_counts'] == [1] * 1000


def test_rehearsal_fails_where_the_real_run_fails():
    """A 1-image class that is not a tail class, n_max below the largest
    class, too few donors: refused on the kept counts as on the real ones;
    a 1-image tail class (the real threshold) passes in both."""
    counts = [300, 250, 200, 150, 40, 7, 1]
    cases = [
        (dict(tail_threshold=1), 'class 6 has 1 training image'),
        (dict(tail_threshold=0.5, n_max=299), r'n_max=\d+ is below'),
        (dict(tail_threshold=210), 'fewer than k=3 donors'),
        (dict(tail_threshold=1.5), 'tail threshold must be a count'),
        (dict(), None),  # 100: classes 4, 5, 6 are tail classes
        (dict(tail_threshold=0.1), None),  # 30 of 300
    ]
    for head, message in cases:
        cfg = Config(dict(model=dict(head=dict(type='AFGHead', **head))))
        real = Config(dict(model=dict(head=dict(type='AFGHead', **head))))
        if head.get('tail_threshold') == 1.5:  # refused before any work
            with pytest.raises(ValueError, match=message):
                smoke_counts(cfg, counts, images=0)
            continue
        kept = smoke_counts(cfg, counts, images=0)
        rules = cfg.model.head
        threshold = real.model.head.get('tail_threshold', 100)
        if isinstance(threshold, float):
            threshold = threshold * max(counts)
        for checked, setting in (
            (counts, dict(tail_threshold=int(-(-threshold // 1)),
                          n_max=real.model.head.get('n_max'))),
            (kept, dict(tail_threshold=rules.tail_threshold,
                        n_max=rules.get('n_max'))),
        ):  # fmt: skip
            if message is None:
                check_generation_setup(checked, **setting)
            else:
                with pytest.raises(ValueError, match=message):
                    check_generation_setup(checked, **setting)


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
                # a dataset key as the config writes it (no rehearsal path)
                'train_dataloader.dataset.seed=3',
            ]
        )
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    work_dir = tmp_path / 'work_dirs' / 'glag_r32_cifar10lt_if100_smoke'
    assert not (tmp_path / 'work_dirs' / 'glag_r32_cifar10lt_if100').exists()
    logs, images = {}, {}
    for stage in ('stage1', 'stage2'):
        done = read_stage_done(str(work_dir / stage))
        assert done['epoch'] == 1
        assert Path(done['checkpoint']).is_file()
        logs[stage] = next((work_dir / stage).glob('*/*.log')).read_text()
        # about 256 of the long-tailed subset's images, every class kept
        assert 'class counts: 10 classes, ' in logs[stage]
        line = logs[stage].split('class counts: 10 classes, ')[1]
        images[stage] = int(line.split(' images')[0])
        assert 200 <= images[stage] <= 300
        assert 'Epoch(val) [1]' in logs[stage]
        assert 'smoke test metrics' in logs[stage]
    steps = -(-images['stage1'] // 128)  # one epoch, batch 128
    assert f'Epoch(train) [1][{steps}/{steps}]' in logs['stage1']
    assert 'AFGHook: statistics of' in logs['stage2']
    # the per-stage option reached stage two only
    dumped = {
        stage: Config.fromfile(
            str(next((work_dir / stage).glob('*/vis_data/config.py')))
        )
        for stage in ('stage1', 'stage2')
    }
    assert dumped['stage2'].model.head.alpha == 0.1
    for stage in ('stage1', 'stage2'):
        train = dumped[stage].train_dataloader.dataset
        assert train.type == 'SmokeSubset' and train.dataset.seed == 3
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
