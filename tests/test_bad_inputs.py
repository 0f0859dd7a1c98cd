"""Bad inputs a user can give, and what they see (docs/reliability.md:
'Bad inputs').

Each test asserts the start of the message and that nothing already on disk
(checkpoints, ``last_checkpoint``, metrics files) changed.
"""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from demo_project import checkpoint_files, demo_config, train, write_data
from mmengine.hooks import Hook
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import HOOKS

from glag_mm.datasets import LongTailDataset
from glag_mm.engine import NonFiniteError
from glag_mm.safe_load import (
    UnreadableCheckpointError,
    check_readable,
    load_checkpoint_file,
)
from glag_tools import ConfigError, prepare_train_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp('bad_inputs')
    data = write_data(root / 'fashion')
    work = root / 'stage1'
    train(demo_config('graloss', data, work, train_cfg__max_epochs=2))
    return dict(root=root, data=data, work=work)


def _damaged(good, path, kind):
    data = open(good, 'rb').read()
    content = {
        'truncated': data[: len(data) // 2],
        'random': np.random.default_rng(0).bytes(4096),
        'empty': b'',
        'text': b'not a checkpoint\n',
    }[kind]
    path.write_bytes(content)
    return str(path)


@pytest.mark.parametrize('kind', ['truncated', 'random', 'empty', 'text'])
def test_unreadable_checkpoint_named(project, tmp_path, kind):
    bad = _damaged(project['work'] / 'epoch_1.pth', tmp_path / 'x.pth', kind)
    with pytest.raises(UnreadableCheckpointError) as error:
        load_checkpoint_file(bad)
    message = str(error.value)
    assert message.startswith(f'checkpoint {bad!r} is unreadable: ')
    assert 'truncated' in message and 'torch.save' in message


def test_unreadable_load_from_leaves_the_work_dir_alone(project, tmp_path):
    work = tmp_path / 'work'
    shutil.copytree(project['work'], work)
    before = checkpoint_files(work)
    bad = _damaged(work / 'epoch_2.pth', tmp_path / 'cut.pth', 'truncated')
    cfg = demo_config('graloss', project['data'], work, load_from=bad)
    with pytest.raises(UnreadableCheckpointError, match='is unreadable'):
        train(cfg)
    assert checkpoint_files(work) == before


def test_auto_resume_skips_an_unreadable_latest_checkpoint(project, tmp_path):
    work = tmp_path / 'work'
    shutil.copytree(project['work'], work)
    (work / 'last_checkpoint').write_text(str(work / 'epoch_2.pth'))
    _damaged(
        project['work'] / 'epoch_2.pth', work / 'epoch_2.pth', 'truncated'
    )
    first = checkpoint_files(work)['epoch_1.pth']
    cfg = demo_config(
        'graloss', project['data'], work, train_cfg__max_epochs=2
    )
    with pytest.warns(UserWarning, match='Automatic resume skips it'):
        prepare_train_config(cfg, work_dir=str(work), resume='auto')
    assert cfg.resume is True
    assert cfg.load_from == str(work / 'epoch_1.pth')
    runner = train(cfg)
    assert runner.epoch == 2
    # this run's own log (the copied work_dir also holds the first run's)
    log = next(Path(runner.log_dir).glob('*.log')).read_text()
    assert 'resumed epoch: 1' in log
    assert checkpoint_files(work)['epoch_1.pth'] == first
    assert (
        load_checkpoint_file(str(work / 'epoch_2.pth'))['meta']['epoch'] == 2
    )

    for name in ('epoch_1.pth', 'epoch_2.pth'):  # nothing readable is left
        _damaged(work / name, work / name, 'empty')
    before = checkpoint_files(work)
    cfg = demo_config('graloss', project['data'], work)
    with pytest.warns(UserWarning), pytest.raises(ConfigError) as error:
        prepare_train_config(cfg, work_dir=str(work), resume='auto')
    assert str(error.value).startswith(
        f'no readable checkpoint in {str(work)!r} to resume from'
    )
    assert checkpoint_files(work) == before


@HOOKS.register_module(force=True)
class InjectNaNHook(Hook):
    """Makes the features of one training batch NaN.

    ``where='trunk'``: the backbone's output (an uncached run);
    ``where='cache'``: the batch of cached features (the trunk is not run).
    """

    priority = 'HIGHEST'

    def __init__(self, iteration: int, where: str) -> None:
        self.iteration, self.where = iteration, where

    def before_train(self, runner):
        def poison(module, args, output):
            if runner.iter + 1 == self.iteration:
                return tuple(o * float('nan') for o in output)
            return None

        if self.where == 'trunk':
            runner.model.backbone.register_forward_hook(poison)

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if self.where == 'cache' and runner.iter + 1 == self.iteration:
            data_batch['inputs'] = data_batch['inputs'] * float('nan')


@pytest.mark.parametrize(
    'head, where, place',
    [
        ('glag', 'cache', 'features entering the head (head.fc input)'),
        ('lws', 'trunk', 'trunk features (neck output)'),
    ],
)
def test_nan_features_stop_training(project, tmp_path, head, where, place):
    work = tmp_path / head
    stage_one = str(project['work'] / 'epoch_2.pth')
    cfg = demo_config(head, project['data'], work, stage_one=stage_one)
    per_epoch = len(train(cfg).train_dataloader)  # epoch_1.pth, no NaN
    saved = checkpoint_files(work)
    assert 'epoch_1.pth' in saved
    nan_iter = per_epoch + 3
    hooks = [h for h in cfg.custom_hooks if h['type'] != 'InjectNaNHook']
    hooks.append(dict(type='InjectNaNHook', iteration=nan_iter, where=where))
    on_images = dict(train_cfg__cache=False, val_cfg__cache=False)
    cfg = demo_config(
        head,
        project['data'],
        work,
        stage_one=stage_one,
        custom_hooks=hooks,
        train_cfg__max_epochs=2,
        **(on_images if where == 'trunk' else {}),
    )
    prepare_train_config(cfg, work_dir=str(work), resume='auto')
    with pytest.raises(NonFiniteError) as error:
        train(cfg)
    message = str(error.value)
    assert message.startswith(
        f'non-finite value (NaN or Inf) in the {place} at training '
        f'iteration {nan_iter} (epoch 2, batch 3/{per_epoch})'
    )
    after = checkpoint_files(work)  # no checkpoint written, none changed
    assert {name: after.get(name) for name in saved} == saved
    assert [n for n in set(after) - set(saved) if n.endswith('.pth')] == []
    state = load_checkpoint_file(str(work / 'epoch_1.pth'))['state_dict']
    assert all(
        torch.isfinite(v).all()
        for v in state.values()
        if v.is_floating_point()
    )


class _TwoClasses(BaseDataset):
    def __init__(self, per_class=5):
        self.per_class = per_class
        super().__init__(ann_file='', metainfo=dict(classes=['a', 'b']))

    def load_data_list(self):
        image = np.zeros((2, 2, 3), np.uint8)
        return [
            dict(img=image, gt_label=c)
            for c in (0, 1)
            for _ in range(self.per_class)
        ]


def test_empty_heldout_split_named(tmp_path):
    with pytest.raises(ValueError) as error:
        LongTailDataset(_TwoClasses(), imbalance_factor=1, split='heldout')
    message = str(error.value)
    assert message.startswith(
        "LongTailDataset(split='heldout') is empty: the training subset "
        '(imbalance_factor=1, max_count=None) keeps every image'
    )
    assert 'Set max_count below the class sizes' in message
    kept = LongTailDataset(
        _TwoClasses(), imbalance_factor=1, max_count=3, split='heldout'
    )
    assert len(kept) == 4 and kept.metainfo['class_counts'] == [2, 2]
    assert os.listdir(tmp_path) == []


def test_overwritten_bytes_found_before_resuming(project, tmp_path):
    path = tmp_path / 'epoch_1.pth'
    data = bytearray((project['work'] / 'epoch_1.pth').read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)  # zeros over tensor data
    path.write_bytes(bytes(data))
    check_readable(str(path))  # the zip directory is intact
    with pytest.raises(UnreadableCheckpointError) as error:
        check_readable(str(path), crc=True)
    assert str(error.value).startswith(
        f'checkpoint {str(path)!r} is unreadable'
    )
