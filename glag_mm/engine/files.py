"""Stage two's files (feature cache, statistics): written once per machine
through an atomic rename, stamped (:func:`glag_mm.core.file_stamp.seal`),
and used only where :func:`usable_stage_two_file` finds them whole and built
for the run's key; anything else is moved aside, named, and rebuilt.
"""

import glob
import logging
import os
import os.path as osp
import socket
import zipfile
from typing import Callable, Optional

from mmengine.dist import barrier, broadcast_object_list, get_rank
from mmengine.logging import print_log

from ..core.file_stamp import stamp_problem
from ..core.zip_crc import first_bad_member, is_storage
from ..safe_load import (
    CheckpointError,
    UnsafeCheckpointError,
    check_readable,
    load_checkpoint_file,
)
from ..work_dir_lock import remove_stale_tmp


def is_node_writer() -> bool:
    """Whether this process writes its machine's files: local rank 0."""
    return int(os.environ.get('LOCAL_RANK', get_rank())) == 0


def write_once_per_node(path: str, write: Callable[[str], None]) -> bool:
    """:func:`is_node_writer` runs ``write(tmp)`` if ``path`` is missing and
    renames it; every rank waits. Whether this process wrote it."""
    wrote = False
    if is_node_writer() and not osp.isfile(path):
        os.makedirs(osp.dirname(path) or '.', exist_ok=True)
        tmp = f'{path}.{socket.gethostname()}.{os.getpid()}.tmp'
        try:
            write(tmp)
            os.replace(tmp, path)
            wrote = True
        except (OSError, RuntimeError) as error:  # torch: "open file failed"
            raise OSError(
                f'could not write {path!r} (through {tmp!r}): '
                f'{str(error).strip().splitlines()[0]}; check the free space '
                f'and the permissions of {osp.dirname(path) or "."!r}.'
            ) from error
        finally:
            if osp.exists(tmp):
                os.remove(tmp)
    barrier()
    return wrote


def stage_two_problem(path: str, key: str) -> Optional[str]:
    """Why the stage-two file ``path`` is not the one for ``key`` (missing,
    damaged, a refused type, another key, a failed checksum); None where it
    is. The pickle's zip CRC is checked, the tensors against the stamp."""
    if not osp.isfile(path):
        return 'it is missing'
    try:
        check_readable(path)
        bad = first_bad_member(path, skip=is_storage)
        if bad is not None:
            return f'it is damaged ({bad!r} fails its CRC check)'
        data = load_checkpoint_file(path, 'cpu', mmap=True, crc=False)
    except UnsafeCheckpointError:
        return (
            'it holds a pickled type outside the allow-list (it could run '
            'code), so it was not read'
        )
    except (CheckpointError, OSError, zipfile.BadZipFile) as error:
        return f'it is damaged ({getattr(error, "reason", error)})'
    return stamp_problem(data, key)


def _check_writable(folder: str, what: str) -> None:
    try:
        os.makedirs(folder, exist_ok=True)
        why = '' if os.access(folder, os.W_OK | os.X_OK) else 'read-only'
    except OSError as error:
        why = str(error)
    if why:
        raise PermissionError(
            f'the folder {folder!r} of the {what} is not writable ({why}); '
            'make it writable or choose another folder.'
        )


def usable_stage_two_file(path: str, key: str, what: str, logger=None) -> bool:
    """Whether the stage-two file ``path`` can be used (decided by
    :func:`is_node_writer`, elsewhere: whether it exists). An unusable one
    is moved to ``<path>.rejected`` with a warning; where it will be built,
    the folder's write access is checked before the pass that fills it and
    a killed writer's temporary files are removed."""
    if not is_node_writer():
        return osp.isfile(path)
    problem = stage_two_problem(path, key)
    if problem is None:
        return True
    if osp.lexists(path):
        rejected = f'{path}.rejected'
        try:
            os.replace(path, rejected)
        except OSError as error:
            raise RuntimeError(
                f'the {what} {path!r} cannot be used: {problem}; it cannot '
                f'be moved aside either ({error}). Delete it; it is then '
                'rebuilt.'
            ) from error
        print_log(
            f'the {what} {path!r} is not used: {problem}. It is rebuilt; '
            f'the old file is kept as {rejected!r}.',
            logger=logger or 'current',
            level=logging.WARNING,
        )
    _check_writable(osp.dirname(path) or '.', what)
    for left in remove_stale_tmp(f'{glob.escape(path)}.*.tmp'):
        print_log(
            f'removed {left!r}, left by a killed run', logger or 'current'
        )
    return False


def build_once(path: str, key: str, what: str, build, save, logger=None):
    """Make ``path`` the stage-two file of ``key``: unless rank 0 finds it
    usable, every rank runs ``build()`` (its part of the pass) and each
    machine's writer ``save(result, tmp)``. Whether it was built now."""
    found = [usable_stage_two_file(path, key, what, logger)]
    broadcast_object_list(found)
    if not found[0]:
        result = build()
        write_once_per_node(path, lambda tmp: save(result, tmp))
    return not found[0]
