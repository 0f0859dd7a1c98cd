"""Every config under configs/ builds its model and datasets on tiny files.

Configs are found by glob, so configs added later are tested too. Each is
prepared as tools/train.py prepares it, its data roots and split files are
pointed at tiny generated data in tmp_path, and the model, the train
dataset, its sampler, the val / test datasets and the evaluators are built;
stage-one configs on small images also run one forward / loss / backward.
A dataset type this file does not know fails with a message saying where to
teach it.
"""

import ast
import os
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.logging import MessageHub
from mmpretrain.datasets import CIFAR10
from mmpretrain.registry import DATA_SAMPLERS, DATASETS, METRICS, MODELS
from test_tools import write_fashion_mnist

from glag_mm.engine import count_dataset_labels
from glag_mm.runtime import set_train_class_counts
from glag_tools import (
    is_multi_stage,
    load_stages,
    prepare_train_config,
    uses_stage_one_checkpoint,
)

CONFIGS = Path(__file__).resolve().parents[1] / 'configs'
ALL_CONFIGS = sorted(
    p
    for p in CONFIGS.rglob('*.py')
    if '_base_' not in p.relative_to(CONFIGS).parts
)
IDS = [str(p.relative_to(CONFIGS)) for p in ALL_CONFIGS]

LIST_READERS = {'ImageNetLT': 1000, 'PlacesLT': 365, 'INaturalist2018': 8142}
SMALL_IMAGE_DATASETS = {'CIFAR10', 'CIFAR100', 'FashionMNIST', 'MNIST'}


def tail_counts(num_classes: int, n_max: int = 200) -> list:
    """Per-class image counts that cover every imbalance factor >= 10.

    Class i gets ceil(n_max * 10^(-i/(C-1))) images, at least the
    exponential profile's target for any IF >= 10 with this n_max.
    """
    i = np.arange(num_classes)
    return np.ceil(n_max * 10.0 ** (-i / max(num_classes - 1, 1))).tolist()


def _labels(counts) -> np.ndarray:
    return np.repeat(np.arange(len(counts)), np.asarray(counts, dtype=int))


def write_cifar(root: Path, num_classes: int) -> str:
    """Tiny CIFAR-10 / CIFAR-100 pickles in the official layout."""
    rng = np.random.default_rng(0)
    if num_classes == 10:
        folder, label_key = root / 'cifar-10-batches-py', 'labels'
        train_files = [f'data_batch_{i}' for i in range(1, 6)]
        test_file = 'test_batch'
    else:
        folder, label_key = root / 'cifar-100-python', 'fine_labels'
        train_files, test_file = ['train'], 'test'
    folder.mkdir(parents=True)
    train = _labels(tail_counts(num_classes))
    test = _labels([2] * num_classes)
    chunks = np.array_split(train, len(train_files))
    for name, labels in [*zip(train_files, chunks), (test_file, test)]:
        data = rng.integers(0, 255, (len(labels), 3072), dtype=np.uint8)
        with open(folder / name, 'wb') as f:
            pickle.dump({'data': data, label_key: labels.tolist()}, f)
    return str(root)


def write_jpg_tree(root: Path, num_classes: int = 10) -> str:
    """train/<class>/*.jpg and test/<class>/*.jpg, 32x32."""
    image = np.full((32, 32, 3), 128, dtype=np.uint8)
    for split, counts in (
        ('train', tail_counts(num_classes)),
        ('test', [2] * num_classes),
    ):
        for c, n in enumerate(counts):
            folder = root / split / f'class_{c:02d}'
            folder.mkdir(parents=True)
            for j in range(int(n)):
                cv2.imwrite(str(folder / f'{j}.jpg'), image)
    return str(root)


def write_split_list(root: Path, ann_file: str, num_classes: int) -> str:
    """``relative/path.jpg label`` lines, every class present."""
    path = root / ann_file
    path.parent.mkdir(parents=True, exist_ok=True)
    counts = [3] + [1] * (num_classes - 1)
    lines = [
        f'images/{c}/{j}.jpg {c}'
        for c, n in enumerate(counts)
        for j in range(n)
    ]
    path.write_text('\n'.join(lines) + '\n')
    return str(root)


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp('tiny_data')
    return dict(
        root=root,
        CIFAR10=write_cifar(root / 'cifar10', 10),
        CIFAR100=write_cifar(root / 'cifar100', 100),
        FashionMNIST=write_fashion_mnist(
            root / 'fashion', [int(n) for n in tail_counts(10, 100)]
        ),
        CustomDataset=write_jpg_tree(root / 'jpg'),
    )


def point_at_tiny_data(node, data: dict, where='cfg') -> None:
    """Redirect every dataset of a config tree to the tiny files."""
    if isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            point_at_tiny_data(value, data, f'{where}[{i}]')
        return
    if not isinstance(node, dict):
        return
    kind = node.get('type')
    kind = kind.split('.')[-1] if isinstance(kind, str) else kind
    if kind in ('CIFAR10', 'CIFAR100', 'FashionMNIST', 'MNIST'):
        node['data_root'] = data['FashionMNIST' if 'MNIST' in kind else kind]
        node['download'] = False
    elif kind == 'CustomDataset':
        assert not node.get('ann_file'), f'{where}: teach test_configs'
        node['data_root'] = data['CustomDataset']
    elif kind in LIST_READERS:
        root = data['root'] / kind
        node['data_root'] = write_split_list(
            root, node['ann_file'], LIST_READERS[kind]
        )
    elif 'data_root' in node or 'ann_file' in node:
        pytest.fail(
            f'{where}: dataset type {kind!r} is unknown to '
            'tests/test_configs.py; teach point_at_tiny_data() to make tiny '
            'files for it.'
        )
    for key, value in node.items():
        point_at_tiny_data(value, data, f'{where}.{key}')


def _innermost_type(dataset_cfg) -> str:
    while 'dataset' in dataset_cfg:
        dataset_cfg = dataset_cfg['dataset']
    return dataset_cfg.get('type')


def _forward_loss(model, dataset, data_preprocessor_cfg) -> None:
    """One training forward / loss / backward on 4 images."""
    hub = MessageHub.get_instance('test_configs')
    hub.update_info('iter', 0)
    hub.update_info('max_iters', 10)
    set_train_class_counts(count_dataset_labels(dataset))
    batch = pseudo_collate([dataset[i] for i in range(4)])
    data = model.data_preprocessor(batch, training=True)
    model.train()
    losses = model(**data, mode='loss')
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total), losses
    total.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.filterwarnings('ignore:The given NumPy array is not writable')
@pytest.mark.parametrize('path', ALL_CONFIGS, ids=IDS)
def test_config_builds(path, tiny_data, tmp_path, monkeypatch):
    # the tiny pickles cannot match the md5 sums mmpretrain checks
    monkeypatch.setattr(CIFAR10, '_check_integrity', lambda self: True)
    cfg = Config.fromfile(str(path))
    if is_multi_stage(cfg):
        stages = load_stages(cfg, str(path))
        for stage in stages:  # each stage config is tested on its own
            assert Path(stage.config).resolve() in {
                p.resolve() for p in ALL_CONFIGS
            }, f'{stage.config} should live under configs/'
        return
    fake_stage_one = tmp_path / 'stage_one.pth'
    fake_stage_one.write_bytes(b'')
    # a stage-two config reads the stage-one checkpoint from one key, at run
    # time (StageOneCheckpointHook); no placeholder string in the config
    stage_two = 'stage_one_checkpoint' in cfg
    assert not uses_stage_one_checkpoint(cfg), path.name
    hooks = [h['type'] for h in cfg.get('custom_hooks', [])]
    assert stage_two == ('StageOneCheckpointHook' in hooks), path.name
    prepare_train_config(
        cfg,
        config_path=str(path),
        work_dir=str(tmp_path / 'work'),
        stage_one_checkpoint=str(fake_stage_one),
    )
    if stage_two:
        assert cfg.stage_one_checkpoint == str(fake_stage_one)
    assert any(h['type'] == 'ClassCountsHook' for h in cfg.custom_hooks)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        point_at_tiny_data(cfg.get(key), tiny_data, key)

    model_cfg = cfg.model.copy()
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(model_cfg)

    loader = cfg.train_dataloader
    if not loader.get('num_workers'):
        assert not loader.get('persistent_workers')
    dataset = DATASETS.build(loader.dataset)
    assert len(dataset) > 0
    sampler = DATA_SAMPLERS.build(
        loader.sampler, default_args=dict(dataset=dataset, seed=0)
    )
    first = next(iter(sampler))
    assert 0 <= first < len(dataset)
    for key in ('val', 'test'):
        if cfg.get(f'{key}_dataloader'):
            assert len(DATASETS.build(cfg[f'{key}_dataloader'].dataset)) > 0
            evaluator = cfg[f'{key}_evaluator']
            for metric in (
                evaluator if isinstance(evaluator, list) else [evaluator]
            ):
                METRICS.build(metric)
    if not stage_two and _innermost_type(loader.dataset) in (
        SMALL_IMAGE_DATASETS | {'CustomDataset'}
    ):
        _forward_loss(model, dataset, cfg.get('data_preprocessor'))


def _flatten(node, prefix=''):
    """{'a.b.c': leaf} of a nested config dict."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            out.update(_flatten(value, f'{prefix}{key}.'))
        return out
    return {prefix[:-1]: node}


def _ce_twin(path: Path) -> Path:
    """configs/ce/ce_<stem>.py of configs/<method>/<method>_<stem>.py."""
    method = path.parent.name
    if method == 'demo':
        return path.with_name('ce_' + path.name.split('_', 1)[1])
    return CONFIGS / 'ce' / ('ce_' + path.name.split('_', 1)[1])


METHOD_TWINS = sorted(
    [
        *(CONFIGS / 'graloss').glob('graloss_*.py'),
        *(CONFIGS / 'gala').glob('gala_*.py'),
        *(CONFIGS / 'fbl').glob('fbl_*.py'),
        *(CONFIGS / 'demo').glob('graloss_*.py'),
        *(CONFIGS / 'demo').glob('gala_*.py'),
        *(CONFIGS / 'demo').glob('fbl_*.py'),
    ]
)


@pytest.mark.parametrize(
    'path', METHOD_TWINS, ids=lambda p: str(p.relative_to(CONFIGS))
)
def test_method_configs_inherit_their_ce_twin_and_change_one_line(path):
    """A GraLoss / GALA / FBL config is its CE twin plus one statement, and
    the two effective configs differ only in the classification head."""
    twin = _ce_twin(path)
    assert twin.is_file(), f'{path.name} has no CE twin {twin}'
    tree = ast.parse(path.read_text())
    statements = [
        node
        for node in tree.body
        if not (
            isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        )
    ]
    assert len(statements) == 2, [ast.unparse(n) for n in statements]
    base, change = statements
    assert ast.unparse(base.targets[0]) == '_base_'
    (parent,) = ast.literal_eval(base.value)
    assert (path.parent / parent).resolve() == twin.resolve()
    assert ast.unparse(change).startswith('model = dict(head=dict(')
    ours = _flatten(Config.fromfile(str(path)).to_dict())
    theirs = _flatten(Config.fromfile(str(twin)).to_dict())
    changed = {
        key
        for key in set(ours) | set(theirs)
        if key not in ('filename',) and ours.get(key) != theirs.get(key)
    }
    assert changed and all(k.startswith('model.head.') for k in changed), (
        changed
    )
    loss = Config.fromfile(str(path)).model.head.get('loss', {})
    if loss.get('type') == 'GradualBalancedLoss':
        assert changed == {
            'model.head.loss.type',
            'model.head.loss.num_classes',
        }
        assert loss.num_classes == ours['model.head.num_classes']


def test_every_ce_config_has_a_graloss_twin():
    twins = sorted((CONFIGS / 'ce').glob('ce_*.py'))
    assert len(twins) >= 12
    for ce in twins:
        graloss = CONFIGS / 'graloss' / ce.name.replace('ce_', 'graloss_', 1)
        assert graloss.is_file(), f'{ce.name} has no GraLoss twin'


RECIPES = {
    # config stem: (lr, batch per GPU, epochs, imbalance factor or None)
    'r32_cifar100lt_if10': (0.1, 128, 200, 10),
    'r32_cifar100lt_if50': (0.1, 128, 200, 50),
    'r32_cifar100lt_if100': (0.1, 128, 200, 100),
    'r32_cifar100lt_if200': (0.1, 128, 200, 200),
    'r32_cifar10lt_if10': (0.1, 128, 200, 10),
    'r32_cifar10lt_if100': (0.1, 128, 200, 100),
    'r10_imagenetlt': (0.2, 64, 200, None),
    'r50_imagenetlt': (0.2, 64, 200, None),
    'r50_inat18': (0.2, 64, 90, None),
    'r152_placeslt': (0.2, 64, 30, None),
}


@pytest.mark.parametrize('stem', sorted(RECIPES))
def test_stage_one_recipes(stem):
    lr, batch, epochs, imbalance = RECIPES[stem]
    for method in ('ce', 'graloss'):
        cfg = Config.fromfile(str(CONFIGS / method / f'{method}_{stem}.py'))
        optimizer = cfg.optim_wrapper.optimizer
        assert (optimizer.type, optimizer.lr) == ('SGD', lr)
        assert (optimizer.momentum, optimizer.weight_decay) == (0.9, 5e-4)
        assert cfg.train_cfg.max_epochs == epochs
        assert cfg.train_dataloader.batch_size == batch
        batch_total = 128 if lr == 0.1 else 512
        assert cfg.auto_scale_lr.base_batch_size == batch_total
        schedulers = cfg.param_scheduler
        schedulers = (
            schedulers if isinstance(schedulers, list) else [schedulers]
        )
        cosine = schedulers[-1]
        assert cosine.type == 'CosineAnnealingLR' and cosine.end == epochs
        if imbalance is not None:
            assert cfg.train_dataloader.dataset.type == 'LongTailDataset'
            assert cfg.train_dataloader.dataset.imbalance_factor == imbalance
            warmup = schedulers[0]
            assert (warmup.type, warmup.end) == ('LinearLR', 5)
        assert cfg.val_evaluator.type == 'LongTailAccuracy'
        assert cfg.test_evaluator.type == 'LongTailAccuracy'
        assert cfg.default_hooks.checkpoint.save_best == 'lt/top1'
        assert 'glag_mm' in cfg.custom_imports.imports


def test_every_config_is_tested():
    assert len(ALL_CONFIGS) >= 26
    assert os.sep.join(['demo', 'ce_r8_fmnistlt.py']) in IDS


def test_resnet10_backbone():
    net = MODELS.build(dict(type='ResNet10'))
    assert net.stage_blocks == (1, 1, 1, 1)
    (out,) = net(torch.rand(1, 3, 64, 64))
    assert out.shape == (1, 512, 2, 2)
    assert sum(len(getattr(net, name)) for name in net.res_layers) == 4
    reference = MODELS.build(dict(type='ResNet', depth=18))
    assert sum(p.numel() for p in net.parameters()) < sum(
        p.numel() for p in reference.parameters()
    )
    with pytest.raises(ValueError, match="type='ResNet'"):
        MODELS.build(dict(type='ResNet10', depth=18))
