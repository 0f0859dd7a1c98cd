"""One run per work_dir: the lock, a stale lock, ``.tmp`` clean-up.

A live holder is a ``sleep`` process of this host; killing it makes its
lock stale. ``Runner.from_cfg`` takes the lock before the Runner writes
anything, so a refused run leaves the work_dir byte for byte as it was.
"""

import hashlib
import json
import os
import socket
import subprocess

import pytest
from mmengine.runner import Runner
from test_feature_disk_cache import _cfg

from glag_mm import work_dir_lock
from glag_mm.work_dir_lock import LOCK_NAME, acquire, release

HOST = socket.gethostname()


@pytest.fixture()
def sleeper():
    proc = subprocess.Popen(['sleep', '60'])
    yield proc
    proc.kill()
    proc.wait()


def _hold(work_dir, pid, host=HOST, started=None):
    work_dir.mkdir(parents=True, exist_ok=True)
    holder = dict(host=host, pid=pid, started=started)
    (work_dir / LOCK_NAME).write_text(json.dumps(holder))


def _tree(folder):
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob('*'))
        if p.is_file()
    }


def test_lock_holds_this_process_and_is_given_back(tmp_path):
    lock = acquire(str(tmp_path / 'work'))
    holder = json.loads(open(lock).read())
    assert holder['host'] == HOST and holder['pid'] == os.getpid()
    assert acquire(str(tmp_path / 'work')) == lock  # same process: held
    release(str(tmp_path / 'work'))
    assert not os.path.exists(lock)


def test_live_run_refused_naming_it(tmp_path, sleeper):
    work = tmp_path / 'work'
    _hold(work, sleeper.pid, started=work_dir_lock._start_time(sleeper.pid))
    with pytest.raises(RuntimeError) as error:
        acquire(str(work))
    message = str(error.value)
    assert f"host '{HOST}', pid {sleeper.pid}" in message
    assert str(work / LOCK_NAME) in message
    _hold(work, 1234, host='other-machine')
    with pytest.raises(RuntimeError, match="host 'other-machine', pid 1234"):
        acquire(str(work))


def test_stale_lock_does_not_block(tmp_path, sleeper):
    work = tmp_path / 'work'
    sleeper.kill()
    sleeper.wait()
    _hold(work, sleeper.pid)  # killed: its pid is gone
    assert acquire(str(work)) == str(work / LOCK_NAME)
    release(str(work))
    other = tmp_path / 'reused'  # a live pid that started at another time
    _hold(other, os.getppid(), started='1')
    assert acquire(str(other)) == str(other / LOCK_NAME)
    release(str(other))


def test_tmp_files_of_a_killed_run_removed(tmp_path, sleeper):
    dead = subprocess.Popen(['true'])
    dead.wait()
    work = tmp_path / 'work'
    (work / 'feature_cache').mkdir(parents=True)
    left = [
        work / f'epoch_2.pth.{dead.pid}.tmp',
        work / 'feature_cache' / f'k.pth.{HOST}.{dead.pid}.tmp',
    ]
    kept = [
        work / 'feature_cache' / f'k.pth.{HOST}.{sleeper.pid}.tmp',  # alive
        work / 'feature_cache' / f'k.pth.other-machine.{dead.pid}.tmp',
        work / 'notes.tmp',
    ]
    for path in left + kept:
        path.write_bytes(b'x' * 10)
    acquire(str(work))
    release(str(work))
    assert not any(p.exists() for p in left)
    assert all(p.exists() for p in kept)


def test_unwritable_work_dir_named(tmp_path):
    (tmp_path / 'file').write_text('')
    with pytest.raises(PermissionError) as error:
        acquire(str(tmp_path / 'file' / 'work'))
    assert f'work_dir {str(tmp_path / "file" / "work")!r} cannot be' in str(
        error.value
    )


def test_runner_refused_before_it_writes(tmp_path, sleeper):
    work = tmp_path / 'work'
    _hold(work, sleeper.pid)
    (work / 'epoch_3.pth').write_bytes(b'a checkpoint of the live run')
    before = _tree(work)
    with pytest.raises(RuntimeError, match=f'pid {sleeper.pid}'):
        Runner.from_cfg(_cfg(work, None))
    assert _tree(work) == before
    # held by this process: the Runner takes it, gives it back at the end
    os.remove(work / LOCK_NAME)
    runner = Runner.from_cfg(_cfg(work, None))
    assert (work / LOCK_NAME).is_file()
    runner.call_hook('after_run')
    assert not (work / LOCK_NAME).exists()
