"""Load checkpoints without running code from them (docs/reliability.md,
safe checkpoint loading).

:func:`load_checkpoint_file` is where every ``.pth`` read of glag_mm and
mmengine's local scheme ends: ``torch.load(weights_only=True)`` with
:data:`SAFE_GLOBALS`, the types found (``get_unsafe_globals_in_checkpoint``)
in stage-one, stage-two and best checkpoints: mmengine's ``HistoryBuffer``
and its statistics (pickled as ``getattr(HistoryBuffer, 'mean')``, so
``getattr`` is allowed for exactly that), numpy arrays, scalars and dtypes
under numpy 1 and 2 names, and ``list`` / ``dict``. Anything else raises
:class:`UnsafeCheckpointError` naming the type and ``TRUST_ENV``.
"""

import os
import os.path as osp
import pickle
import re
import warnings
import zipfile
from typing import Any, Callable, List, Optional

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

from .core.zip_crc import first_bad_member

TRUST_ENV = 'GLAG_MM_TRUST_CHECKPOINTS'


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be loaded; the message names the file."""


class UnreadableCheckpointError(CheckpointError):
    """Truncated, empty or not a file written by ``torch.save``."""


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """The file's pickle needs a type outside :data:`SAFE_GLOBALS`."""


def _history_statistic(owner: Any, name: str):
    """``getattr(HistoryBuffer, name)`` for its statistics methods only."""
    known = ('min', 'max', 'current', 'mean')
    known += tuple(HistoryBuffer._statistics_methods)
    if owner is HistoryBuffer and name in known and hasattr(owner, name):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'Unsupported global: GLOBAL builtins.getattr({owner!r}, {name!r}) '
        'was not an allowed global'
    )


def _numpy_globals() -> List[Any]:
    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core
    entries = []
    for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        entries.append((multiarray._reconstruct, f'{module}._reconstruct'))
        entries.append((multiarray.scalar, f'{module}.scalar'))
    entries += [np.ndarray, np.dtype]
    # numpy >= 1.25 pickles a dtype through its class, e.g. Float64DType
    for code in '?bBhHiIlLqQefdgFDG':
        kind = type(np.dtype(code))
        entries.append((kind, f'numpy.dtypes.{kind.__name__}'))
    return entries


SAFE_GLOBALS: List[Any] = [
    HistoryBuffer,
    (_history_statistic, 'builtins.getattr'),
    list,
    dict,
    *_numpy_globals(),
]


def check_readable(
    filename: str,
    crc: bool = False,
    origin: Optional[str] = None,
    skip: Optional[Callable[[str], bool]] = None,
) -> None:
    """Raise :class:`UnreadableCheckpointError` unless the zip directory
    (``crc``: and the CRC-32 of every member but those ``skip`` names,
    :mod:`glag_mm.core.zip_crc`) reads; a legacy file needs a pickle
    header. ``origin``: the URL it came from."""
    size = osp.getsize(filename)
    if size == 0:
        raise _unreadable(filename, 'the file is empty (0 bytes)', origin)
    if zipfile.is_zipfile(filename):
        try:
            bad = first_bad_member(filename, skip=skip) if crc else None
            if not crc:
                zipfile.ZipFile(filename).close()
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
            raise _unreadable(filename, str(error), origin) from error
        if bad is not None:
            reason = f'member {bad!r} fails its CRC check (damaged bytes)'
            raise _unreadable(filename, reason, origin)
        return
    with open(filename, 'rb') as f:
        head = f.read(2)
    if head[:1] != b'\x80':  # legacy torch.save files start with a pickle
        reason = f'not a zip archive nor a pickle ({size} bytes)'
        raise _unreadable(filename, reason, origin)


def _named(filename: str, origin: Optional[str]) -> str:
    if origin is None:
        return f'checkpoint {filename!r}'
    return f'checkpoint {origin!r} (downloaded to {filename!r})'


def _unreadable(
    filename: str, reason: str, origin: Optional[str] = None
) -> UnreadableCheckpointError:
    fix = (
        'point load_from / resume / init_cfg / stage_one_checkpoint at an '
        'intact checkpoint'
        if origin is None
        else f'delete {filename!r} to download it again'
    )
    error = UnreadableCheckpointError(
        f'{_named(filename, origin)} is unreadable: {reason}. It is damaged '
        '(truncated by an interrupted save, copy or download, or with '
        f'altered bytes) or not a file written by torch.save; {fix}.'
    )
    error.reason = reason  # without the advice, for callers that rebuild
    return error


_REFUSED = (
    re.compile(r'GLOBAL (builtins\.getattr\(.*?\)) was not'),
    re.compile(r'GLOBAL (\S+) (?:was not an allowed|whose module)'),
    re.compile(r'unrecognized function (.+?)(?: which belongs|$)', re.M),
    re.compile(r'allowlisted via `add_safe_globals`.*?got (.+?)$', re.M),
)


def _refused_type(message: str) -> str:
    """The type torch's weights-only unpickler refused, from its message."""
    for pattern in _REFUSED:
        found = pattern.search(message)
        if found:
            kind = found.group(1).strip()
            # torch drops the module of builtins (exec, eval, open...)
            return kind if '.' in kind.split('(')[0] else f'builtins.{kind}'
    paragraphs = [p.strip() for p in message.split('\n\n') if p.strip()]
    return paragraphs[1] if len(paragraphs) > 1 else message.strip()


def _unsafe(
    filename: str, error: Exception, origin: Optional[str]
) -> UnsafeCheckpointError:
    kind = _refused_type(str(error))
    return UnsafeCheckpointError(
        f"{_named(filename, origin)} needs {kind}, which is not on glag_mm's "
        'allow-list of checkpoint types (tensors, containers, numpy values, '
        'mmengine HistoryBuffer), so it was not loaded: unpickling it could '
        f'run code. If you made or trust this file, set {TRUST_ENV}=1 to '
        'load it with full unpickling (any code in the file runs).'
    )


def load_checkpoint_file(
    filename: str,
    map_location: Optional[Any] = None,
    mmap: bool = False,
    crc: bool = True,
    origin: Optional[str] = None,
):
    """``torch.load(weights_only=True)`` with :data:`SAFE_GLOBALS`, after
    the zip CRCs are checked (``crc``; once per file version in a process,
    :func:`_verified`), so a damaged file is named damaged, never unpickled
    (``mmap``: the processes of a machine share the pages; ``origin``: the
    URL the file was downloaded from)."""
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(
            f'checkpoint {filename!r} does not exist; check the path given '
            'to load_from / resume / init_cfg or the stage-one work_dir.'
        )
    signature = _signature(filename)
    check_readable(
        filename, crc=crc and signature not in _VERIFIED, origin=origin
    )
    if crc:
        _VERIFIED.add(signature)
    return _load(filename, map_location, mmap, origin)


#: (path, device, inode, size, mtime, ctime) of files whose CRCs held
_VERIFIED: set = set()


def _signature(filename: str) -> tuple:
    """What changes when a file is written or replaced (``ctime`` cannot
    be set back by a user), so a file is CRC-checked once per version."""
    st = os.stat(filename)
    return (
        osp.abspath(filename),
        st.st_dev,
        st.st_ino,
        st.st_size,
        st.st_mtime_ns,
        st.st_ctime_ns,
    )


def _load(filename: str, map_location: Any, mmap: bool, origin: Optional[str]):
    trusted = os.environ.get(TRUST_ENV, '').strip().lower()
    weights_only = trusted not in ('1', 'true', 'yes')
    if not weights_only:
        warnings.warn(
            f'{TRUST_ENV} is set: {filename!r} is loaded with full '
            'unpickling, which runs any code the file carries.',
            stacklevel=2,
        )
    allowed = SAFE_GLOBALS if weights_only else []
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(
                filename,
                map_location=map_location,
                weights_only=weights_only,
                mmap=mmap,
            )
    except pickle.UnpicklingError as error:
        if weights_only and 'Weights only load failed' in str(error):
            if 'invalid load key' not in str(error):
                raise _unsafe(filename, error, origin) from None
        reason = str(error).splitlines()[0]
        raise _unreadable(filename, reason, origin) from error
    except RuntimeError as error:
        if 'PytorchStreamReader' not in str(error):
            raise
        reason = str(error).splitlines()[0]
        raise _unreadable(filename, reason, origin) from error
    except (EOFError, KeyError, ValueError, OSError, IndexError) as error:
        reason = f'{type(error).__name__}: {error}'
        raise _unreadable(filename, reason, origin) from error
