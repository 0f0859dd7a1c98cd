"""No code runs from a checkpoint: every loading path of the plugin.

A real checkpoint of the project (the demo's GraLoss stage one) is copied
with a ``__reduce__`` payload that creates a marker file when unpickled.
Each way the plugin loads a checkpoint - ``--resume``, ``load_from``, a
``Pretrained`` init_cfg, ``GLAGDistillHook``'s teacher, the feature cache,
``tools/test.py`` - must refuse the copy (the marker never appears) and load
the original. ``GLAG_MM_TRUST_CHECKPOINTS=1`` opts into full unpickling: the
marker then appears, which shows the payload is live.
"""

import importlib.util
import os.path as osp
import pickle
from types import SimpleNamespace

import pytest
import torch
from demo_project import (
    DEMO,
    Payload,
    demo_config,
    train,
    write_data,
    write_payload_checkpoint,
)
from mmengine.config import Config
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import _load_checkpoint
from test_tools import TOOLS

from glag_mm.engine.distill_hook import stage_one_classifier
from glag_mm.safe_load import (
    SAFE_GLOBALS,
    TRUST_ENV,
    UnsafeCheckpointError,
    load_checkpoint_file,
)

pytestmark = pytest.mark.slow


def _tool_main(name):
    spec = importlib.util.spec_from_file_location(name, TOOLS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.fixture(scope='module')
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp('safe_loading')
    data = write_data(root / 'fashion')
    train(demo_config('graloss', data, root / 'stage1'))
    good = str(root / 'stage1' / 'epoch_1.pth')
    return dict(root=root, data=data, good=good)


@pytest.fixture()
def evil(project, tmp_path):
    marker = tmp_path / 'MARKER'
    path = write_payload_checkpoint(
        project['good'], tmp_path / 'evil.pth', marker
    )
    return path, marker


def _refused(error, path):
    message = str(error.value)
    assert path in message
    assert 'builtins.exec' in message  # the type torch refused
    assert f'{TRUST_ENV}=1' in message  # and the opt-in


def test_allow_list_is_what_real_checkpoints_need(project, tmp_path):
    """Stage one, stage two (AFG + KD, LWS): nothing else is needed."""
    data, good = project['data'], project['good']
    files = [good]
    for name in ('glag', 'lws'):
        work = tmp_path / name
        train(demo_config(name, data, work, stage_one=good))
        files.append(str(work / 'epoch_1.pth'))
    allowed = {
        entry[1] if isinstance(entry, tuple) else
        f'{entry.__module__}.{entry.__qualname__}'
        for entry in SAFE_GLOBALS
    }  # fmt: skip
    for path in files:
        needed = set(
            torch.serialization.get_unsafe_globals_in_checkpoint(path)
        )
        assert needed  # mmengine's HistoryBuffer at least
        assert needed <= allowed, needed - allowed
        ckpt = load_checkpoint_file(path, map_location='cpu')
        assert {'meta', 'state_dict', 'optimizer', 'message_hub'} <= set(ckpt)
        history = ckpt['message_hub']['log_scalars']['train/loss']
        assert isinstance(history, HistoryBuffer)
        assert history.mean() == pytest.approx(history.data[0].mean())
    stage_two = load_checkpoint_file(files[1])['state_dict']
    assert 'head.confidence' in stage_two  # AFGHead's buffers


def test_opt_in_runs_the_payload(evil, monkeypatch):
    path, marker = evil
    with pytest.raises(UnsafeCheckpointError) as error:
        load_checkpoint_file(path)
    _refused(error, path)
    assert isinstance(error.value, pickle.UnpicklingError)
    assert not marker.exists()
    monkeypatch.setenv(TRUST_ENV, '1')
    with pytest.warns(UserWarning, match='full unpickling'):
        load_checkpoint_file(path)
    assert marker.exists()  # the payload is real


def test_getattr_only_for_history_statistics(tmp_path):
    class Sneaky:
        def __reduce__(self):
            return (getattr, (HistoryBuffer, '__init__'))

    torch.save({'meta': Sneaky()}, tmp_path / 'x.pth')
    with pytest.raises(UnsafeCheckpointError, match="'__init__'"):
        load_checkpoint_file(str(tmp_path / 'x.pth'))


def test_checkpoint_loader_refuses_and_loads(project, evil):
    path, marker = evil
    with pytest.raises(UnsafeCheckpointError) as error:
        _load_checkpoint(path, map_location='cpu')
    _refused(error, path)
    assert not marker.exists()
    ckpt = _load_checkpoint(project['good'], map_location='cpu')
    assert ckpt['meta']['epoch'] == 1


@pytest.mark.parametrize('how', ['resume', 'load_from'])
def test_resume_and_load_from(project, evil, tmp_path, how):
    path, marker = evil
    resume = dict(resume=True) if how == 'resume' else dict(resume=False)
    cfg = demo_config(
        'graloss', project['data'], tmp_path / 'bad', load_from=path, **resume
    )
    with pytest.raises(UnsafeCheckpointError) as error:
        train(cfg)
    _refused(error, path)
    assert not marker.exists()
    cfg = demo_config(
        'graloss',
        project['data'],
        tmp_path / 'good',
        load_from=project['good'],
        train_cfg__max_epochs=2,
        **resume,
    )
    runner = train(cfg)
    # resumed: one more epoch; loaded: two epochs from the loaded weights
    assert runner.epoch == 2
    assert osp.isfile(tmp_path / 'good' / 'epoch_2.pth')
    assert osp.isfile(tmp_path / 'good' / 'epoch_1.pth') == (how != 'resume')


def test_pretrained_init_and_feature_cache(project, evil, tmp_path):
    """Stage two: Pretrained init_cfg (trunk, stage-one checkpoint), the
    distillation teacher and the feature cache's file (never unpickled:
    set aside and rebuilt)."""
    path, marker = evil
    cfg = demo_config(
        'glag', project['data'], tmp_path / 'bad', stage_one=path
    )
    with pytest.raises(UnsafeCheckpointError) as error:
        train(cfg)
    _refused(error, path)
    frames = [entry.name for entry in error.traceback]
    assert 'init_weights' in frames  # the trunk's stage-one weights: first
    assert not marker.exists()
    raw = Config.fromfile(str(DEMO / 'glag_r8_fmnistlt.py')).custom_hooks
    cfg = demo_config(
        'glag',
        project['data'],
        tmp_path / 'bad_pretrained',
        stage_one=path,
        custom_hooks=[h for h in raw if h['type'] != 'GLAGDistillHook'],
    )
    with pytest.raises(UnsafeCheckpointError) as error:
        train(cfg)
    _refused(error, path)
    frames = [entry.name for entry in error.traceback]
    assert 'init_weights' in frames  # Pretrained, without the teacher
    assert not marker.exists()

    cache = dict(cache_dir=str(tmp_path / 'cache'))
    assert any(h['type'] == 'GLAGDistillHook' for h in raw)

    def stage_two(work):
        return demo_config(
            'glag',
            project['data'],
            tmp_path / work,
            stage_one=project['good'],
            train_cfg__cache=cache,
            val_cfg__cache=cache,
        )

    train(stage_two('good'))
    cached = sorted((tmp_path / 'cache').glob('*.pth'))
    assert len(cached) == 2  # training and validation features
    state = load_checkpoint_file(str(cached[0]))
    state['note'] = Payload(marker)
    torch.save(state, cached[0])
    train(stage_two('cached'))  # the payload's file is set aside, rebuilt
    log = next((tmp_path / 'cached').glob('*/*.log')).read_text()
    assert (
        f'{str(cached[0])!r} is not used: it holds a pickled type outside '
        'the allow-list' in log
    )
    assert not marker.exists()
    rejected = cached[0].with_name(cached[0].name + '.rejected')
    assert rejected.read_bytes() != cached[0].read_bytes()
    del state['note']  # the same file without the payload loads
    torch.save(state, cached[0])
    runner = train(stage_two('reloaded'))
    log = next((tmp_path / 'reloaded').glob('*/*.log')).read_text()
    assert 'features (' in log and f'from {cached[0]}' in log
    assert runner.epoch == 1


def test_distill_hook_teacher(project, evil):
    path, marker = evil
    head = SimpleNamespace(num_classes=10, in_channels=32)
    with pytest.raises(UnsafeCheckpointError) as error:
        stage_one_classifier(path, head, 'GLAGDistillHook')
    _refused(error, path)
    assert not marker.exists()
    weight, _, _ = stage_one_classifier(project['good'], head, 'teacher')
    assert weight.shape == (10, 32)


def test_tools_test(project, evil, tmp_path):
    path, marker = evil
    main = _tool_main('test')
    config = str(tmp_path / 'cfg.py')
    cfg = demo_config('graloss', project['data'], tmp_path / 'w')
    cfg.dump(config)
    with pytest.raises(UnsafeCheckpointError) as error:
        main([config, path, '--work-dir', str(tmp_path / 'bad')])
    _refused(error, path)
    assert not marker.exists()
    out = tmp_path / 'metrics.json'
    main(
        [
            config,
            project['good'],
            '--work-dir',
            str(tmp_path / 'good'),
            '--out',
            str(out),
            '--out-item',
            'metrics',
        ]
    )
    assert out.is_file()
