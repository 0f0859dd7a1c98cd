"""Each workaround in glag_mm.compat: broken without it, fixed with it."""

import os
import pickle
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint
from test_tools import free_port

from glag_mm import compat

REPO_ROOT = Path(__file__).resolve().parents[1]


def _checkpoint_with_history(path):
    """A file shaped like mmengine's: message-hub objects in its meta."""
    buffer = HistoryBuffer()
    buffer.update(1.5)
    torch.save(
        {
            'meta': {'message_hub': {'log_scalars': {'loss': buffer}}},
            'state_dict': {'w': torch.ones(2)},
        },
        path,
    )


def test_plain_torch_load_refuses_mmengine_checkpoints(tmp_path):
    """The breakage: torch >= 2.6 loads with weights_only=True."""
    path = tmp_path / 'epoch_1.pth'
    _checkpoint_with_history(path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)


def test_checkpoint_loading_fixed(tmp_path):
    path = tmp_path / 'epoch_1.pth'
    _checkpoint_with_history(path)
    assert CheckpointLoader._schemes[''] is compat.load_from_local
    ckpt = _load_checkpoint(str(path), map_location='cpu')
    assert torch.equal(ckpt['state_dict']['w'], torch.ones(2))
    history = ckpt['meta']['message_hub']['log_scalars']['loss']
    assert history.current() == 1.5


def test_missing_checkpoint_says_what_to_check(tmp_path):
    with pytest.raises(FileNotFoundError, match='load_from / resume'):
        _load_checkpoint(str(tmp_path / 'missing.pth'))


def test_checkpoint_patch_only_where_the_loader_lacks_weights_only():
    import mmengine
    import mmengine.runner.checkpoint as mmengine_checkpoint

    # mmengine's own loader (0.10.7) calls torch.load without weights_only
    assert compat.loader_needs_replacing(mmengine_checkpoint.load_from_local)

    def already_safe(filename, map_location=None):
        return torch.load(filename, map_location, weights_only=True)

    assert not compat.loader_needs_replacing(already_safe)
    assert not compat.loader_needs_replacing(compat.load_from_local)
    reason = compat.APPLIED['patch_checkpoint_loading']
    assert f'mmengine {mmengine.__version__}' in reason
    assert f'torch {torch.__version__}' in reason
    assert 'weights_only=True' in reason


_BLOCK_PKG_RESOURCES = """
import sys
class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name == 'pkg_resources' or name.startswith('pkg_resources.'):
            raise ModuleNotFoundError("No module named 'pkg_resources'")
sys.meta_path.insert(0, _Blocker())
sys.modules.pop('pkg_resources', None)
"""


def _read_mmpretrain_base(tmp_path, block_pkg_resources):
    """Read an ``mmpretrain::`` base with mmengine alone (no glag_mm)."""
    cfg_file = tmp_path / 'cfg.py'
    cfg_file.write_text("_base_ = ['mmpretrain::_base_/models/resnet18.py']\n")
    script = (_BLOCK_PKG_RESOURCES if block_pkg_resources else '') + (
        'from mmengine.config import Config\n'
        f'cfg = Config.fromfile({str(cfg_file)!r})\n'
        'b = cfg.model.backbone\n'
        "print('BACKBONE', b.type, b.depth)\n"
    )
    return subprocess.run(
        [sys.executable, '-W', 'ignore', '-c', script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(tmp_path),
    )


def test_setuptools_pin_keeps_mmpretrain_base_configs_readable(tmp_path):
    """mmengine <= 0.10.7 needs pkg_resources for 'mmpretrain::' bases
    (gone in setuptools >= 82): the requirement setuptools<82 replaces the
    former patch of mmengine's package lookup."""
    from importlib.metadata import version

    from packaging.version import Version

    broken = _read_mmpretrain_base(tmp_path, block_pkg_resources=True)
    assert broken.returncode != 0
    assert "No module named 'pkg_resources'" in broken.stderr
    read = _read_mmpretrain_base(tmp_path, block_pkg_resources=False)
    assert read.returncode == 0, read.stderr[-2000:]
    assert 'BACKBONE ResNet 18' in read.stdout
    assert Version(version('setuptools')) < Version('82')
    assert 'setuptools<82' in (REPO_ROOT / 'setup.py').read_text()
    lines = (REPO_ROOT / 'requirements.txt').read_text().splitlines()
    assert 'setuptools<82' in lines


def test_mmengine_dist_init_needs_cuda_the_tools_do_not(monkeypatch):
    """The breakage: mmengine selects a CUDA device before init; the tools
    start the gloo group themselves (no mmengine patch)."""
    if torch.cuda.is_available():
        pytest.skip('the CPU-only path is what is tested here')
    import mmengine.dist.utils as dist_utils

    from glag_tools.launch import init_cpu_process_group

    env = dict(RANK='0', LOCAL_RANK='0', WORLD_SIZE='1')
    env.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(free_port()))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises((RuntimeError, AssertionError)):
        dist_utils._init_dist_pytorch(backend='gloo')
    assert not torch.distributed.is_initialized()
    assert not init_cpu_process_group('none')
    try:
        assert init_cpu_process_group('pytorch')
        assert torch.distributed.get_backend() == 'gloo'
        assert torch.distributed.get_world_size() == 1
    finally:
        torch.distributed.destroy_process_group()


_DDP_SCRIPT = """
import sys
import torch
from torch import nn
import glag_mm  # noqa: F401
from glag_tools.launch import (
    init_cpu_process_group, run_and_exit, set_cpu_model_wrapper)
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.runner import Runner


class Toy(BaseModel):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, inputs, labels, mode='tensor'):
        logits = self.fc(torch.stack(inputs))
        if mode == 'loss':
            return dict(loss=nn.functional.cross_entropy(
                logits, torch.as_tensor(labels)))
        return logits


class Data(torch.utils.data.Dataset):
    def __len__(self):
        return 16

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return dict(inputs=torch.randn(4, generator=g), labels=i % 2)


def main(argv):
    init_cpu_process_group('pytorch')
    cfg = Config(dict(launcher='pytorch'))
    set_cpu_model_wrapper(cfg)
    runner = Runner(
        model=Toy(),
        work_dir=sys.argv[1],
        train_dataloader=dict(
            dataset=Data(), sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=4, num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=True, max_epochs=2),
        launcher='pytorch',
        cfg=dict(model_wrapper_cfg=cfg.model_wrapper_cfg),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1)),
    )
    runner.train()
    with open(f'{sys.argv[1]}/rank{runner.rank}.txt', 'w') as f:
        f.write(f'WORLD {runner.world_size} '
                f'WRAPPER {type(runner.model).__name__} '
                f'DEVICES {runner.model.device_ids}')
    print('RANK DONE', runner.rank, flush=True)


run_and_exit(main)
print('NOT REACHED')
"""


@pytest.mark.slow
def test_torchrun_two_ranks_on_cpu(tmp_path):
    script = tmp_path / 'ddp_toy.py'
    script.write_text(_DDP_SCRIPT)
    env = dict(
        os.environ,
        OMP_NUM_THREADS='1',
        PYTHONPATH=f'{REPO_ROOT}{os.pathsep}{REPO_ROOT / "tools"}',
    )
    result = subprocess.run(
        [
            sys.executable, '-m', 'torch.distributed.run',
            '--nproc_per_node=2', f'--master_port={free_port()}',
            str(script), str(tmp_path / 'work'),
        ],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    for rank in (0, 1):
        written = (tmp_path / 'work' / f'rank{rank}.txt').read_text()
        assert written == (
            'WORLD 2 WRAPPER MMDistributedDataParallel DEVICES None'
        )
    assert result.stdout.count('RANK DONE') == 2
    assert 'NOT REACHED' not in result.stdout  # left by os._exit
    assert (tmp_path / 'work' / 'epoch_2.pth').is_file()


def test_empty_dataset_named_when_built(tmp_path):
    """An empty annotation file: mmengine's bare message, then the patch's."""
    from mmengine.dataset import BaseDataset
    from mmpretrain.registry import DATASETS

    from glag_mm import compat

    (tmp_path / 'val.txt').write_text('')
    cfg = dict(
        type='CustomDataset',
        data_root=str(tmp_path),
        ann_file='val.txt',
        pipeline=[],
        metainfo=dict(classes=['a', 'b']),
    )
    assert 'patch_empty_dataset_message' in compat.APPLIED
    patched = BaseDataset._serialize_data
    try:  # without the patch: the message names nothing
        BaseDataset._serialize_data = patched.__wrapped__
        assert compat.empty_dataset_message_unclear()
        with pytest.raises(ValueError, match='need at least one array'):
            DATASETS.build(cfg)
    finally:
        BaseDataset._serialize_data = patched
    with pytest.raises(ValueError) as error:
        DATASETS.build(cfg)
    message = str(error.value)
    assert message.startswith('CustomDataset(ann_file=')
    assert str(tmp_path / 'val.txt') in message
    assert 'holds no sample' in message
    assert list(tmp_path.iterdir()) == [tmp_path / 'val.txt']


def test_empty_evaluation_split_named_before_training():
    """A split built without serialisation is named by ClassCountsHook."""
    from types import SimpleNamespace

    from glag_mm.engine.class_counts_hook import _check_evaluation_splits

    class Empty(list):
        ann_file = 'meta/val.txt'

    def loop(dataset):
        return SimpleNamespace(dataloader=SimpleNamespace(dataset=dataset))

    runner = SimpleNamespace(_val_loop=loop(Empty()), _test_loop=None)
    with pytest.raises(ValueError) as error:
        _check_evaluation_splits(runner)
    assert str(error.value).startswith(
        "val_dataloader.dataset (Empty: ann_file='meta/val.txt') holds no "
        'sample'
    )
    runner = SimpleNamespace(_val_loop=loop([1]), _test_loop=dict(x=1))
    _check_evaluation_splits(runner)  # built and non-empty, or not built


def _runner(work_dir, name):
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class Tiny(BaseModel):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(2, 2)

        def forward(self, inputs, data_samples=None, mode='tensor'):
            return self.fc(inputs)

    return Runner(
        model=Tiny(),
        work_dir=str(work_dir),
        experiment_name=f'{name}_{os.urandom(3).hex()}',
        default_scope='mmpretrain',  # the current scope of later tests
    )


def test_runs_started_in_one_second_keep_their_own_logs(tmp_path):
    """Folders named for this second and the next are taken: the Runner
    waits for a free one (mmengine alone reuses one and appends to its log,
    as a resume straight after a failure did)."""
    from mmengine.runner import Runner

    assert 'patch_run_timestamp' in compat.APPLIED
    now = time.time()
    taken = {
        time.strftime(compat.RUN_TIMESTAMP, time.localtime(now + d))
        for d in (0, 1)
    }
    for name in taken:
        (tmp_path / name).mkdir()
        (tmp_path / name / f'{name}.log').write_text('earlier run\n')
    patched = Runner.setup_env
    try:  # without the patch: a taken folder, two runs in one log
        Runner.setup_env = patched.__wrapped__
        assert compat.run_folders_reuse_a_second()
        reused = _runner(tmp_path, 'unpatched')
        assert reused.timestamp in taken
        log = tmp_path / reused.timestamp / f'{reused.timestamp}.log'
        lines = log.read_text().splitlines()
        assert lines[0] == 'earlier run' and len(lines) > 1
    finally:
        Runner.setup_env = patched
    assert not compat.run_folders_reuse_a_second()
    runner = _runner(tmp_path, 'patched')
    assert runner.timestamp > max(taken)
    log = tmp_path / runner.timestamp / f'{runner.timestamp}.log'
    assert 'earlier run' not in log.read_text()
    for name in taken - {reused.timestamp}:
        log = tmp_path / name / f'{name}.log'
        assert log.read_text() == 'earlier run\n'


def test_wait_for_unused_second_is_bounded(tmp_path):
    assert compat.wait_for_unused_second(str(tmp_path)) < 0.02
    now = time.time()
    for d in range(4):  # folders for every second the wait could see
        stamp = time.localtime(now + d)
        (tmp_path / time.strftime(compat.RUN_TIMESTAMP, stamp)).mkdir()
    waited = compat.wait_for_unused_second(str(tmp_path), limit=0.3)
    assert 0.3 <= waited < 1.0


def test_validation_pass_does_not_build_the_train_loop(tmp_path):
    """A val-only Runner with mmpretrain's default (disabled)
    VisualizationHook: unpatched it builds the train loop (and its
    dataloader), patched it does not."""
    from mmengine.runner import Runner
    from mmengine.runner.base_loop import BaseLoop
    from mmpretrain.engine.hooks import VisualizationHook
    from test_metric import TinySet

    def loader(shuffle):
        return dict(
            dataset=TinySet(4, per_class=2),
            sampler=dict(type='DefaultSampler', shuffle=shuffle),
            batch_size=4,
            num_workers=0,
        )

    def runner(name, **train):
        return Runner(
            model=dict(
                type='ImageClassifier',
                backbone=dict(type='CifarResNet', depth=8),
                neck=dict(type='GlobalAveragePooling'),
                head=dict(type='LinearClsHead', num_classes=4, in_channels=64),
            ),
            work_dir=str(tmp_path / name),
            val_dataloader=loader(False),
            val_evaluator=dict(type='Accuracy'),
            val_cfg=dict(),
            default_hooks=dict(
                visualization=dict(type='VisualizationHook', enable=False)
            ),
            default_scope='mmpretrain',
            experiment_name=f'{name}_{os.urandom(3).hex()}',
            **train,
        )

    train = dict(
        train_dataloader=loader(True),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
    )
    assert 'patch_visualization_hook' in compat.APPLIED
    patched = VisualizationHook.after_val_iter
    try:
        VisualizationHook.after_val_iter = patched.__wrapped__
        assert compat.visualization_hook_builds_train_loop()
        built = runner('unpatched', **train)
        built.val()
        assert isinstance(built._train_loop, BaseLoop)
    finally:
        VisualizationHook.after_val_iter = patched
    assert not compat.visualization_hook_builds_train_loop()
    kept = runner('patched', **train)
    kept.val()
    assert not isinstance(kept._train_loop, BaseLoop)
    assert kept._train_loop['max_epochs'] == 1  # still the config


def test_remote_schemes_replaced():
    """mmengine 0.10.7's remote loaders pass no weights_only (its http
    loader runs a payload: test_remote_loading.py); each prefix now maps
    to glag_mm's loader."""
    import mmengine.runner.checkpoint as mmengine_checkpoint

    from glag_mm.remote_load import REMOTE_SCHEMES

    for name in (
        'load_from_http',
        'load_from_torchvision',
        'load_from_openmmlab',
        'load_from_mmcls',
        'load_from_pavi',
        'load_from_ceph',
    ):
        loader = getattr(mmengine_checkpoint, name)
        assert compat.loader_needs_replacing(loader), name
    reason = compat.APPLIED['patch_checkpoint_loading']
    for prefixes, loader in REMOTE_SCHEMES.items():
        for prefix in prefixes:
            assert CheckpointLoader._schemes[prefix] is loader
            assert repr(prefix) in reason


def test_import_adds_no_warning_filter_of_its_own():
    """Importing glag_mm leaves the process's warning filters to the user
    (mmcv-lite's MultiScaleDeformableAttention warning and setuptools'
    pkg_resources one are filtered in the pytest configuration instead)."""
    code = textwrap.dedent(
        """
        import warnings
        before = list(warnings.filters)
        import glag_mm
        for f in warnings.filters:
            if f not in before and f[1] is not None:
                print(f[1].pattern)
        """
    )
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1]))
    out = subprocess.run(
        [sys.executable, '-c', code],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    patterns = out.stdout.splitlines()
    assert not [p for p in patterns if 'MultiScale' in p or 'pkg_res' in p]


# the version on each side of each bound: (version, applied)
_MMENGINE_SIDES = [
    ('0.7.4', False),
    ('0.8.0', True),
    ('0.10.7', True),
    ('0.10.8', False),
]
_MMPRETRAIN_SIDES = [
    ('1.0.0rc8', False),
    ('1.0.0', True),
    ('1.2.0', True),
    ('1.2.1', False),
]


def _owner(name):
    """The class a bounded workaround patches, and the attribute."""
    from mmengine.dataset import BaseDataset
    from mmengine.runner import Runner
    from mmpretrain.engine.hooks import VisualizationHook

    return {
        'patch_empty_dataset_message': (BaseDataset, '_serialize_data'),
        'patch_run_timestamp': (Runner, 'setup_env'),
        'patch_visualization_hook': (VisualizationHook, 'after_val_iter'),
    }[name]


_BOUNDED = [
    ('patch_empty_dataset_message', 'mmengine', _MMENGINE_SIDES),
    ('patch_run_timestamp', 'mmengine', _MMENGINE_SIDES),
    ('patch_visualization_hook', 'mmpretrain', _MMPRETRAIN_SIDES),
]


@pytest.mark.parametrize(
    'name,package,version,applied',
    [(n, p, v, a) for n, p, sides in _BOUNDED for v, a in sides],
)
def test_workaround_applied_only_in_its_version_range(
    monkeypatch, name, package, version, applied
):
    """On the unpatched class, with the reported version monkeypatched:
    patched inside the range, left alone outside it."""
    import importlib

    owner, attr = _owner(name)
    unpatched = getattr(owner, attr).__wrapped__
    monkeypatch.setattr(owner, attr, unpatched)
    monkeypatch.setattr(compat, 'APPLIED', {})
    monkeypatch.setattr(
        importlib.import_module(package), '__version__', version
    )
    assert getattr(compat, name)() is applied
    now = getattr(owner, attr)
    if applied:
        assert now.__wrapped__ is unpatched
        assert f'{package} {version} (in {package} >= ' in compat.APPLIED[name]
    else:
        assert now is unpatched
        assert compat.APPLIED == {}


def test_checkpoint_registration_on_every_version(monkeypatch):
    """Not bounded: mmengine's own local loader is replaced whatever
    version mmengine reports."""
    from collections import OrderedDict

    import mmengine
    import mmengine.runner.checkpoint as mmengine_checkpoint

    for version in ('0.7.4', '0.10.7', '0.10.8', '1.0.0'):
        schemes = OrderedDict(CheckpointLoader._schemes)
        schemes[''] = mmengine_checkpoint.load_from_local
        monkeypatch.setattr(CheckpointLoader, '_schemes', schemes)
        monkeypatch.setattr(mmengine, '__version__', version)
        assert compat.patch_checkpoint_loading()
        assert CheckpointLoader._schemes[''] is compat.load_from_local
        reason = compat.APPLIED['patch_checkpoint_loading']
        assert f'mmengine {version} loads' in reason
        assert "['local']" in reason


@pytest.mark.parametrize('version,applied', _MMENGINE_SIDES)
def test_runner_wrappers_only_in_their_version_range(
    monkeypatch, caplog, version, applied
):
    """The Runner, unwrapped, then install() with mmengine's version
    monkeypatched: a multi-stage config is refused naming glag_mm's tools
    inside the range; outside it, mmengine's own KeyError and a warning."""
    import mmengine
    from mmengine.runner import Runner

    from glag_mm.engine import runner_defaults

    monkeypatch.setattr(
        Runner, 'register_hooks', Runner.register_hooks.__wrapped__
    )
    wrapped = Runner.__dict__['from_cfg'].__func__.__wrapped__
    monkeypatch.setattr(Runner, 'from_cfg', wrapped)
    monkeypatch.setattr(mmengine, '__version__', version)
    assert runner_defaults.install() is applied
    cfg = dict(stages=[dict(name='stage_one')])
    if applied:
        with pytest.raises(ValueError, match="glag_mm's tools/train.py"):
            Runner.from_cfg(cfg)
        assert hasattr(Runner.register_hooks, '__wrapped__')
    else:
        with pytest.raises(KeyError):
            Runner.from_cfg(cfg)
        assert not hasattr(Runner.register_hooks, '__wrapped__')
        assert f'mmengine {version} is outside mmengine >= 0.8.0' in (
            caplog.text
        )


def test_each_range_is_in_its_docstring():
    """The ranges the code compares are the ones the docstrings state."""
    from glag_mm.engine import runner_defaults

    def flat(text):
        return ' '.join(text.split())

    for name, doc in (
        ('EMPTY_DATASET', compat.__doc__),
        ('RUN_TIMESTAMP_RANGE', compat.__doc__),
        ('VISUALIZATION_HOOK', compat.__doc__),
        ('RUNNER_WRAPPERS', runner_defaults.__doc__),
    ):
        versions = getattr(compat, name)
        assert f'{name}`, {versions})' in flat(doc), name
