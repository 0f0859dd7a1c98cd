"""The one-line swap under mmpretrain's own tools (its installed .mim copy).

mmpretrain's ``tools/train.py`` trains a project config whose only
glag_mm lines are ``custom_imports`` and the loss: importing glag_mm adds
the class-count hook, so GraLoss finds the counts and logs tau. A two-stage
config there names glag_mm's tool instead of failing on ``'model'``.
"""

import os
import subprocess
import sys
from pathlib import Path

import mmpretrain
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from test_tools import write_fashion_mnist

from glag_mm.engine import ClassCountsHook

REPO = Path(__file__).resolve().parents[1]
MM_TOOLS = Path(mmpretrain.__file__).parent / '.mim' / 'tools'

pytestmark = pytest.mark.skipif(
    not (MM_TOOLS / 'train.py').is_file(),
    reason="mmpretrain's tools/train.py is not in its .mim folder",
)


def _mm_tool(name, *args, cwd):
    env = dict(
        os.environ,
        OMP_NUM_THREADS='1',
        PYTHONPATH=os.pathsep.join(
            [str(REPO), os.environ.get('PYTHONPATH', '')]
        ),
    )
    return subprocess.run(
        [sys.executable, str(MM_TOOLS / name), *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_mmpretrain_train_py_runs_graloss_config(tmp_path):
    # the demo config reads data/fashion-mnist relative to the working dir
    write_fashion_mnist(tmp_path / 'data' / 'fashion-mnist', [120] * 10)
    config = REPO / 'configs' / 'demo' / 'graloss_r8_fmnistlt.py'
    text = config.read_text()
    assert 'ClassCountsHook' not in text  # nothing but the loss line
    work_dir = tmp_path / 'work'
    result = _mm_tool('train.py', config, '--work-dir', work_dir, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    log = next(work_dir.glob('*/*.log')).read_text()
    assert 'class counts: 10 classes' in log
    # GraLoss trained with the counts and logged its schedule
    train_lines = [ln for ln in log.splitlines() if 'Epoch(train)' in ln]
    assert train_lines and all(' tau: ' in ln for ln in train_lines)
    last_tau = float(train_lines[-1].split(' tau: ')[1].split()[0])
    assert 0.5 < last_tau <= 1.0  # convex tau(u) near the end of training
    assert (work_dir / 'epoch_8.pth').is_file()


def test_default_hook_only_where_counts_are_read(tmp_path):
    write_fashion_mnist(tmp_path / 'fashion', [4] * 10)
    base = REPO / 'configs' / 'demo' / 'graloss_r8_fmnistlt.py'
    names = []

    def hooks(**options):
        cfg = Config.fromfile(str(base))
        cfg.merge_from_dict(
            {
                'work_dir': str(tmp_path / 'w'),
                'train_dataloader.dataset.dataset.data_root': str(
                    tmp_path / 'fashion'
                ),
                'custom_hooks': [],
            }
        )
        for key, value in options.items():  # replace, not merge
            cfg[key] = value
        cfg.experiment_name = f'hooks_{len(names)}'
        names.append(cfg.experiment_name)
        runner = Runner.from_cfg(cfg)
        return [h for h in runner._hooks if isinstance(h, ClassCountsHook)]

    assert len(hooks()) == 1  # GraLoss reads the counts
    ce = dict(type='CrossEntropyLoss', loss_weight=1.0)
    model = Config.fromfile(str(base)).model
    model.head.loss = ce
    accuracy = dict(type='Accuracy', topk=(1,))
    plain = {
        'model': model,
        'val_evaluator': accuracy,  # the demo validates on held-out images
        'test_evaluator': accuracy,
    }
    assert hooks(**plain) == []  # a plain mmpretrain model: untouched
    lt_metric = dict(plain, test_evaluator=dict(type='LongTailAccuracy'))
    assert len(hooks(**lt_metric)) == 1
    configured = {'custom_hooks': [dict(type='ClassCountsHook')]}
    assert len(hooks(**configured)) == 1  # not added twice


def test_uncountable_dataset_fails_before_loading(tmp_path):
    """A dataset without labels fails in before_run with what to add."""
    from mmengine.dataset import BaseDataset
    from mmpretrain.registry import DATASETS

    @DATASETS.register_module(force=True)
    class _NoLabels(BaseDataset):
        loaded = 0

        def load_data_list(self):
            return [dict(img=None)] * 4

        def __getitem__(self, idx):
            type(self).loaded += 1
            raise AssertionError('a batch was loaded')

    cfg = Config.fromfile(str(REPO / 'configs/demo/graloss_r8_fmnistlt.py'))
    cfg.merge_from_dict({'work_dir': str(tmp_path / 'w'), 'custom_hooks': []})
    cfg.experiment_name = 'uncountable'
    cfg.train_dataloader.dataset = dict(type='_NoLabels')
    # no validation: its held-out split would read the (absent) data
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    runner = Runner.from_cfg(cfg)
    with pytest.raises(TypeError, match="class_counts'\\] nor get_gt_label"):
        runner.train()
    assert _NoLabels.loaded == 0


def test_two_stage_config_under_mmpretrain_tool(tmp_path):
    result = _mm_tool(
        'train.py',
        REPO / 'configs' / 'glag_r32_cifar10lt_if100.py',
        '--work-dir',
        tmp_path / 'w',
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "KeyError: 'model'" not in result.stderr
    assert "Run it with glag_mm's tools/train.py" in result.stderr
    assert "stages ['stage1', 'stage2']" in result.stderr


@pytest.mark.slow
def test_mmpretrain_train_py_refuses_a_held_work_dir(tmp_path):
    """The work_dir lock also applies under mmpretrain's own tool (the
    config imports glag_mm): refused before the Runner writes anything."""
    import json
    import socket

    from glag_mm.work_dir_lock import LOCK_NAME

    config = REPO / 'configs' / 'demo' / 'graloss_r8_fmnistlt.py'
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    with subprocess.Popen(['sleep', '120']) as live:
        try:
            holder = dict(host=socket.gethostname(), pid=live.pid)
            (work_dir / LOCK_NAME).write_text(json.dumps(holder))
            result = _mm_tool(
                'train.py', config, '--work-dir', work_dir, cwd=tmp_path
            )
        finally:
            live.kill()
    assert result.returncode != 0
    assert (
        f'is in use by another run (host {socket.gethostname()!r}, '
        f'pid {live.pid}' in result.stderr
    )
    assert os.listdir(work_dir) == [LOCK_NAME]  # nothing written


@pytest.mark.parametrize('method', ['crt', 'glag'])
def test_mmpretrain_train_py_runs_stage_two_config(method, tmp_path):
    """A shipped stage-two config under mmpretrain's tools/train.py with one
    key for the stage-one checkpoint: the frozen trunk is stage one's, GLAG
    distils from its classifier."""
    from mmpretrain.registry import MODELS

    import glag_mm  # noqa: F401
    from glag_mm.safe_load import load_checkpoint_file

    write_fashion_mnist(tmp_path / 'data' / 'fashion-mnist', [120] * 10)
    stage_one = Config.fromfile(
        str(REPO / 'configs' / 'demo' / 'graloss_r8_fmnistlt.py')
    )
    torch.manual_seed(0)
    state = MODELS.build(stage_one.model).state_dict()
    ckpt = tmp_path / 'stage_one.pth'
    torch.save(dict(state_dict=state, meta={}), ckpt)
    config = REPO / 'configs' / 'demo' / f'{method}_r8_fmnistlt.py'
    assert '{stage_one_checkpoint}' not in config.read_text()
    work_dir = tmp_path / 'work'
    result = _mm_tool(
        'train.py',
        config,
        '--work-dir',
        work_dir,
        '--cfg-options',
        f'stage_one_checkpoint={ckpt}',
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    log = next(work_dir.glob('*/*.log')).read_text()
    assert f'stage-one checkpoint: {ckpt}' in log
    if method == 'glag':
        assert f'GLAGDistillHook: teacher {ckpt}' in log
    final = load_checkpoint_file(str(work_dir / 'epoch_10.pth'))
    final = final['state_dict']
    for key, value in state.items():
        if key.startswith('backbone.') and value.is_floating_point():
            torch.testing.assert_close(final[key], value, msg=key)
    assert not torch.equal(final['head.fc.weight'], state['head.fc.weight'])
    if method == 'glag':  # tools/test.py needs no stage-one file
        ckpt.unlink()
        result = _mm_tool(
            'test.py',
            config,
            work_dir / 'epoch_10.pth',
            '--work-dir',
            tmp_path / 'test',
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert (
            'lt/top1' in next((tmp_path / 'test').glob('*/*.log')).read_text()
        )


@pytest.mark.slow
def test_mmpretrain_train_py_names_the_key_when_missing(tmp_path):
    write_fashion_mnist(tmp_path / 'data' / 'fashion-mnist', [120] * 10)
    config = REPO / 'configs' / 'demo' / 'crt_r8_fmnistlt.py'
    result = _mm_tool(
        'train.py', config, '--work-dir', tmp_path / 'w', cwd=tmp_path
    )
    assert result.returncode != 0
    assert '--cfg-options stage_one_checkpoint=PATH' in result.stderr
