"""One run per work_dir: a lock file taken before the Runner writes.

:func:`acquire` (called by ``Runner.from_cfg``, see
:mod:`glag_mm.engine.runner_defaults`, on rank 0 only) creates
``<work_dir>/.glag_mm.lock`` holding the host, pid and process start time,
atomically (``O_EXCL``). A second live run on the same work_dir is refused
naming the holder; a lock whose process is gone (this host, dead pid or a
pid reused by another process) is taken over. With the lock held, the
``*.tmp`` files that a killed run left (``<file>.<host>.<pid>.tmp`` of this
host, ``<file>.pth.<pid>.tmp``, the pid dead) are removed. The lock goes at
the end of the run (:class:`WorkDirLockHook`) or of the process.
"""

import atexit
import glob
import json
import os
import os.path as osp
import socket
from typing import Dict, Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log

LOCK_NAME = '.glag_mm.lock'

#: absolute work_dir -> lock path, the locks this process holds
HELD: Dict[str, str] = {}


def _start_time(pid: int) -> Optional[str]:
    """The start time of a process (Linux ``/proc``), None if unknown."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int, started: Optional[str] = None) -> bool:
    """Whether ``pid`` runs on this host (and is the process that started
    at ``started``, where both are known)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    now = _start_time(pid)
    return started is None or now is None or now == started


def _holder(path: str) -> Optional[dict]:
    try:
        with open(path) as f:
            holder = json.load(f)
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}  # being written, or damaged: treat as held


def _is_stale(holder: dict) -> bool:
    if holder.get('host') != socket.gethostname():
        return False  # another machine's process cannot be checked
    pid = holder.get('pid')
    return isinstance(pid, int) and not _alive(pid, holder.get('started'))


def remove_stale_tmp(pattern: str) -> list:
    """Remove the files matching ``pattern`` that end ``.<pid>.tmp`` and
    were left by a dead process of this host; their paths."""
    host, removed = socket.gethostname(), []
    for path in glob.glob(pattern):
        parts = osp.basename(path)[: -len('.tmp')].rsplit('.', 2)
        if not (path.endswith('.tmp') and len(parts) == 3):
            continue
        before, pid = parts[1], parts[2]
        if not pid.isdigit() or before not in (host, 'pth', 'json'):
            continue
        if int(pid) != os.getpid() and not _alive(int(pid)):
            try:
                os.remove(path)
                removed.append(path)
            except OSError:
                pass
    return removed


def acquire(work_dir: Optional[str]) -> Optional[str]:
    """Take ``work_dir``'s lock for this process; its path (None where
    ``work_dir`` is unset or this is not rank 0). Raises ``RuntimeError``
    naming the holder where a live run holds it, ``PermissionError`` naming
    the folder where it cannot be written."""
    rank = os.environ.get('RANK', os.environ.get('SLURM_PROCID', '0'))
    if not work_dir or str(rank) != '0':
        return None
    work_dir = osp.abspath(osp.expanduser(str(work_dir)))
    if work_dir in HELD:
        return HELD[work_dir]
    path = osp.join(work_dir, LOCK_NAME)
    me = dict(
        host=socket.gethostname(),
        pid=os.getpid(),
        started=_start_time(os.getpid()),
    )
    try:
        os.makedirs(work_dir, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                holder = _holder(path)
                if _is_stale(holder):
                    os.remove(path)
                    continue
                raise RuntimeError(
                    f'work_dir {work_dir!r} is in use by another run (host '
                    f'{holder.get("host")!r}, pid {holder.get("pid")!r}; lock '
                    f'{path!r}); wait for it to end or choose another '
                    'work_dir (to test a checkpoint of a running training, '
                    'give the test tool another --work-dir). If no run uses '
                    'it (one killed on another machine), delete the lock '
                    'file.'
                ) from None
            with os.fdopen(fd, 'w') as f:
                json.dump(me, f)
            break
    except OSError as error:  # read-only, a file in the way, ...
        raise PermissionError(
            f'work_dir {work_dir!r} cannot be written ({error}); make it '
            'writable or choose another work_dir.'
        ) from error
    HELD[work_dir] = path
    for pattern in ('*.tmp', '*/*.tmp'):
        for left in remove_stale_tmp(osp.join(work_dir, pattern)):
            print_log(f'removed {left!r}, left by a killed run', 'current')
    return path


def release(work_dir: Optional[str]) -> None:
    """Remove ``work_dir``'s lock if this process holds it."""
    work_dir = osp.abspath(osp.expanduser(str(work_dir or '')))
    path = HELD.pop(work_dir, None)
    if path and (_holder(path) or {}).get('pid') == os.getpid():
        try:
            os.remove(path)
        except OSError:
            pass


@atexit.register
def _release_all() -> None:
    for work_dir in list(HELD):
        release(work_dir)


class WorkDirLockHook(Hook):
    """Give the work_dir's lock back when the run ends."""

    priority = 'LOWEST'

    def after_run(self, runner) -> None:
        release(runner.work_dir)
