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

from glag_mm import compat


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

    from glag_mm.engine import ClassCountsHook

    class Empty(list):
        ann_file = 'meta/val.txt'

    def loop(dataset):
        return SimpleNamespace(dataloader=SimpleNamespace(dataset=dataset))

    hook = ClassCountsHook(class_counts=[1, 1])
    hook.published = True
    runner = SimpleNamespace(val_loop=loop(Empty()), test_loop=loop([1]))
    for event in (hook.before_train, hook.before_val):
        with pytest.raises(ValueError) as error:
            event(runner)
        assert str(error.value).startswith(
            "val_dataloader.dataset (Empty: ann_file='meta/val.txt') holds "
            'no sample'
        )
    hook.before_test(runner)  # the test split is not empty
    runner.val_loop = None
    hook.before_train(runner)  # no validation


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
