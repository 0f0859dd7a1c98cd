"""Stage-two files prove what they are: a stamped key and checksums.

The AFG statistics file and the feature cache carry the key they were built
for and the CRC-32 of each tensor. A foreign, edited, damaged, truncated,
empty or payload-carrying file is never used: it is moved aside and rebuilt
with one warning naming it and why; a folder that cannot be written is
named before the pass that would fill it.
"""

import logging
import os
import pickle
import struct
import zipfile

import numpy as np
import pytest
import torch
from demo_project import Payload
from test_feature_disk_cache import COUNTS, _train_and_test
from test_stage_two import (  # noqa: F401  (two_stage: a fixture)
    _run_stage_two,
    _state,
    _stats_file,
    two_stage,
)

from glag_mm.core.class_statistics import ClassStatistics
from glag_mm.core.file_stamp import STAMP, seal, stamp_problem
from glag_mm.core.statistics_builder import StatisticsBuilder
from glag_mm.engine.files import (
    stage_two_problem,
    usable_stage_two_file,
)
from glag_mm.safe_load import (
    TRUST_ENV,
    UnreadableCheckpointError,
    load_checkpoint_file,
)

KEY = 'a' * 32


def _statistics(seed=0, classes=3, dim=6):
    gen = torch.Generator().manual_seed(seed)
    builder = StatisticsBuilder(classes, dim)
    labels = torch.arange(classes).repeat_interleave(torch.tensor([9, 5, 3]))
    feats = torch.randn(len(labels), dim, generator=gen)
    builder.add(feats, labels, torch.arange(len(labels)))
    return builder.finalize(all_gather=False)


@pytest.fixture()
def stats_file(tmp_path):
    path = tmp_path / 'afg_statistics' / f'{KEY}.pth'
    path.parent.mkdir()
    _statistics().save(str(path), key=KEY)
    return path


def _damage(path, how):
    data = path.read_bytes()
    if how == 'truncated':
        path.write_bytes(data[: len(data) // 2])
    elif how == 'random':
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif how == 'empty':
        path.write_bytes(b'')
    elif how in ('tensor bit', 'pickle bit'):
        # a byte inside the first tensor storage, or inside data.pkl
        member = '/data/0' if how == 'tensor bit' else '/data.pkl'
        with zipfile.ZipFile(path) as archive:
            info = next(
                i for i in archive.infolist() if i.filename.endswith(member)
            )
        start = info.header_offset
        name_len, extra_len = struct.unpack(
            '<HH', data[start + 26 : start + 30]
        )
        at = start + 30 + name_len + extra_len + info.file_size // 2
        flipped = bytearray(data)
        flipped[at] ^= 0x10
        path.write_bytes(bytes(flipped))


REASONS = {
    'truncated': 'it is damaged (',
    'random': 'it is damaged (',
    'empty': 'it is damaged (the file is empty (0 bytes))',
    'tensor bit': 'does not match the checksum written with it',
    'pickle bit': f"it is damaged ('{KEY}/data.pkl' fails its CRC check)",
}


def test_seal_records_key_and_tensor_checksums():
    payload = dict(features=torch.randn(5, 3), labels=torch.arange(5))
    sealed = seal(payload, KEY)
    assert stamp_problem(sealed, KEY) is None
    assert 'other weights, data or settings' in stamp_problem(sealed, 'b')
    relabelled = dict(sealed, labels=sealed['labels'].flip(0))
    assert "'labels' does not match" in stamp_problem(relabelled, KEY)
    assert 'no stamp' in stamp_problem(payload, KEY)
    assert sealed[STAMP]['key'] == KEY


@pytest.mark.parametrize('how', sorted(REASONS))
def test_damaged_statistics_named_and_moved_aside(stats_file, how, caplog):
    _damage(stats_file, how)
    damaged = stats_file.read_bytes()
    problem = stage_two_problem(str(stats_file), KEY)
    assert REASONS[how] in problem
    logger = logging.getLogger('stage_two_files_test')
    with caplog.at_level(logging.WARNING):
        usable = usable_stage_two_file(str(stats_file), KEY, 'stats', logger)
    assert not usable and not stats_file.exists()
    # kept, byte for byte, beside the file that will be rebuilt
    rejected = stats_file.parent / f'{KEY}.pth.rejected'
    assert rejected.read_bytes() == damaged
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and str(stats_file) in warnings[0]
    assert problem in warnings[0] and 'It is rebuilt' in warnings[0]


def test_foreign_and_payload_statistics(stats_file, tmp_path):
    good = stats_file.read_bytes()
    assert usable_stage_two_file(str(stats_file), KEY, 'stats') is True
    assert stats_file.read_bytes() == good  # a usable file is untouched
    # another run's statistics copied over this run's file
    _statistics(seed=1).save(str(stats_file), key='b' * 32)
    assert 'other weights, data or settings' in stage_two_problem(
        str(stats_file), KEY
    )
    marker = tmp_path / 'MARKER'
    data = torch.load(stats_file, weights_only=True)
    data['info']['note'] = Payload(marker)
    torch.save(data, stats_file)
    problem = stage_two_problem(str(stats_file), KEY)
    assert 'outside the allow-list' in problem and 'TRUST' not in problem
    assert not marker.exists()
    # a short table saved again without its stamp: refused, no IndexError
    data = torch.load(stats_file, weights_only=False)
    data.pop(STAMP)
    data['factor_size'] = data['factor_size'][:1]
    torch.save(data, stats_file)
    assert 'no stamp' in stage_two_problem(str(stats_file), KEY)


def test_statistics_round_trip(stats_file):
    stats = ClassStatistics.load(str(stats_file))
    want = _statistics()
    for name, value in want.tensors().items():
        assert torch.equal(getattr(stats, name), value)
    assert stats.info == {'key': KEY}


def test_unwritable_folder_named_before_the_pass(tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('')
    path = blocker / 'feature_cache' / f'{KEY}.pth'
    with pytest.raises(PermissionError) as error:
        usable_stage_two_file(str(path), KEY, 'feature cache')
    assert str(blocker / 'feature_cache') in str(error.value)


def test_unmovable_bad_file_says_delete_it(stats_file, monkeypatch):
    _damage(stats_file, 'truncated')

    def refuse(*args):
        raise PermissionError('read-only file system')

    monkeypatch.setattr(os, 'replace', refuse)
    with pytest.raises(RuntimeError) as error:
        usable_stage_two_file(str(stats_file), KEY, 'stats')
    message = str(error.value)
    assert str(stats_file) in message and 'Delete it' in message


@pytest.mark.slow
def test_relabelled_cache_is_rebuilt_not_used(tmp_path, capfd):
    """The head trained after a relabelled (and a truncated) cache file
    equals the head of the run that computed the cache."""
    cache = tmp_path / 'cache'
    weight, metrics, _, _ = _train_and_test(tmp_path / 'first', cache)
    files = sorted(cache.iterdir())
    train_file = next(
        f for f in files if len(torch.load(f)['labels']) == sum(COUNTS)
    )
    state = torch.load(train_file, weights_only=True)
    state['labels'] = state['labels'].flip(0)
    torch.save(state, train_file)
    val_file = next(f for f in files if f != train_file)
    val_file.write_bytes(val_file.read_bytes()[:100])
    capfd.readouterr()
    again, metrics2, images, _ = _train_and_test(tmp_path / 'two', cache)
    assert torch.equal(again, weight) and metrics2 == metrics
    assert images > 0  # the trunk ran again for the rebuilt files
    text = capfd.readouterr().out
    assert f"{str(train_file)!r} is not used: its 'labels' does not" in text
    assert f'{str(val_file)!r} is not used: it is damaged' in text
    assert stage_two_problem(str(train_file), train_file.stem) is None


@pytest.mark.parametrize('how', ['pickle bit', 'tensor bit'])
def test_checkpoint_bit_flip_is_damaged_not_unsafe(stats_file, how):
    """load_checkpoint_file checks the zip CRCs on every load: a flipped
    bit in the pickle or in a tensor is 'damaged', never unpickled, and
    never an invitation to the full-unpickling opt-in."""
    assert load_checkpoint_file(str(stats_file))[STAMP]['key'] == KEY
    _damage(stats_file, how)
    with pytest.raises(UnreadableCheckpointError) as error:
        load_checkpoint_file(str(stats_file))
    assert 'fails its CRC check (damaged bytes)' in str(error.value)
    assert TRUST_ENV not in str(error.value)
    assert not isinstance(error.value, pickle.UnpicklingError)


@pytest.mark.slow
def test_foreign_statistics_rebuilt_not_used(two_stage, tmp_path, capfd):  # noqa: F811
    """Another run's statistics copied over this run's file: rebuilt, and
    the final head equals that of the uninterrupted run."""
    full = two_stage['ckpts']['stage2']
    real = _stats_file(full)
    key = os.path.basename(real)[: -len('.pth')]
    foreign = torch.load(real, weights_only=True)
    foreign.pop(STAMP)
    foreign['means'] = foreign['means'] + 1.0
    path = tmp_path / 'run' / 'afg_statistics' / f'{key}.pth'
    path.parent.mkdir(parents=True)
    torch.save(seal(foreign, 'f' * 32), path)
    capfd.readouterr()
    runner = _run_stage_two(tmp_path / 'run', two_stage['ckpts']['stage1'])
    text = capfd.readouterr().out
    assert f'{str(path)!r} is not used: it was built for other weights' in text
    want = _state(full)
    for name in ('fc.weight', 'fc.bias'):
        got = getattr(runner.model.head, name.split('.')[0]).state_dict()
        torch.testing.assert_close(
            got[name.split('.')[1]], want[f'head.{name}'], rtol=0, atol=1e-6
        )
    rebuilt = ClassStatistics.load(str(path))
    for name, value in ClassStatistics.load(real).tensors().items():
        assert torch.equal(rebuilt.tensors()[name], value), name


def test_tmp_of_a_killed_writer_removed_before_building(tmp_path):
    """A cache folder outside any work_dir: the ``.tmp`` a killed writer
    of this host left is removed when the file is built again."""
    import socket
    import subprocess

    dead = subprocess.Popen(['true'])
    dead.wait()
    path = tmp_path / 'shared_cache' / f'{KEY}.pth'
    path.parent.mkdir()
    left = path.parent / f'{KEY}.pth.{socket.gethostname()}.{dead.pid}.tmp'
    other = path.parent / f'{KEY}.pth.other-machine.{dead.pid}.tmp'
    for tmp in (left, other):
        tmp.write_bytes(b'x' * 100)
    assert usable_stage_two_file(str(path), KEY, 'feature cache') is False
    assert not left.exists() and other.exists()


def test_failed_write_names_the_file(tmp_path):
    """torch's bare "open file failed" becomes an error naming the file;
    no temporary file is left."""
    from glag_mm.engine.files import write_once_per_node

    def write(tmp):
        raise RuntimeError(
            '[enforce fail at inline_container.cc:747] . open file failed'
        )

    path = tmp_path / 'cache' / f'{KEY}.pth'
    with pytest.raises(OSError) as error:
        write_once_per_node(str(path), write)
    message = str(error.value)
    assert message.startswith(f'could not write {str(path)!r} (through ')
    assert 'open file failed; check the free space' in message
    assert os.listdir(path.parent) == []
