"""Load checkpoints without running code from them.

:func:`load_checkpoint_file` is the one place where glag_mm reads a ``.pth``
file: mmengine's local checkpoint scheme (``resume``, ``load_from``,
``init_cfg=dict(type='Pretrained')``, ``tools/test.py``), the distillation
teacher and the feature cache all end here. It unpickles with
``torch.load(weights_only=True)`` and an allow-list of exactly the types that
mmengine and glag_mm write into checkpoints (:data:`SAFE_GLOBALS`), found by
listing ``torch.serialization.get_unsafe_globals_in_checkpoint`` over
checkpoints of stage one (GraLoss), stage two (AFGHead with distillation,
LWSHead) and best-checkpoint runs, optimizer and scheduler state included:

* ``mmengine.logging.HistoryBuffer`` (the message hub's log history) and the
  bound statistics it stores, pickled as ``getattr(HistoryBuffer, 'mean')``;
  ``getattr`` is allowed for exactly that (:func:`_history_statistic`), not
  as the builtin;
* numpy arrays, scalars and dtypes (``_reconstruct``, ``scalar``,
  ``ndarray``, ``dtype`` and the dtype classes), under numpy 1 and 2 names;
* ``builtins.list`` and ``builtins.dict`` (the per-class accuracies and
  the reliability table of ``LongTailAccuracy``, which the message hub keeps
  from the last validation, pickle as a plain list and dict).

Anything else (a ``__reduce__`` payload, a foreign class) is refused with
:class:`UnsafeCheckpointError`, naming the type and the opt-in: the
environment variable ``GLAG_MM_TRUST_CHECKPOINTS=1`` turns full unpickling
on, which runs any code the file carries; set it only for files you made or
trust. A file that cannot be read at all (truncated, empty, not written by
``torch.save``) raises :class:`UnreadableCheckpointError` naming it.
"""

import os
import os.path as osp
import pickle
import re
import warnings
import zipfile
from typing import Any, List, Optional

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

__all__ = [
    'TRUST_ENV',
    'CheckpointError',
    'UnreadableCheckpointError',
    'UnsafeCheckpointError',
    'SAFE_GLOBALS',
    'trusted',
    'check_readable',
    'load_checkpoint_file',
    'latest_readable_checkpoint',
]

TRUST_ENV = 'GLAG_MM_TRUST_CHECKPOINTS'


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be loaded; the message names the file."""


class UnreadableCheckpointError(CheckpointError):
    """Truncated, empty or not a file written by ``torch.save``."""


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """The file's pickle needs a type outside :data:`SAFE_GLOBALS`."""


def _history_statistic(owner: Any, name: str):
    """``getattr`` as checkpoints use it: HistoryBuffer statistics only.

    mmengine pickles ``HistoryBuffer._statistics_methods`` (``min``,
    ``max``, ``current``, ``mean`` and registered ones), which Python writes
    as ``getattr(HistoryBuffer, name)``. Any other attribute is refused.
    """
    known = (
        'min',
        'max',
        'current',
        'mean',
        *HistoryBuffer._statistics_methods,
    )
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


def trusted() -> bool:
    """Whether full unpickling is allowed (``GLAG_MM_TRUST_CHECKPOINTS=1``)."""
    return os.environ.get(TRUST_ENV, '').strip().lower() in (
        '1',
        'true',
        'yes',
    )


def check_readable(filename: str, crc: bool = False) -> None:
    """Raise :class:`UnreadableCheckpointError` unless the file is intact.

    Reads the file's zip directory (no unpickling): a truncated, empty or
    foreign file fails here. With ``crc`` every member's CRC is checked too
    (one read of the whole file), which also catches a partly overwritten
    checkpoint. Legacy (pre zip) ``torch.save`` files are only checked for
    a pickle header.
    """
    size = osp.getsize(filename)
    if size == 0:
        raise _unreadable(filename, 'the file is empty (0 bytes)')
    if zipfile.is_zipfile(filename):
        try:
            with zipfile.ZipFile(filename) as archive:
                bad = archive.testzip() if crc else None
        except (zipfile.BadZipFile, OSError, EOFError) as error:
            raise _unreadable(filename, str(error)) from error
        if bad is not None:
            raise _unreadable(filename, f'member {bad!r} fails its CRC check')
        return
    with open(filename, 'rb') as f:
        head = f.read(2)
    if head[:1] != b'\x80':  # legacy torch.save files start with a pickle
        raise _unreadable(
            filename, f'not a zip archive nor a pickle ({size} bytes)'
        )


def _unreadable(filename: str, reason: str) -> UnreadableCheckpointError:
    return UnreadableCheckpointError(
        f'checkpoint {filename!r} is unreadable: {reason}. It is truncated '
        '(an interrupted save or copy) or not a file written by '
        'torch.save; point load_from / resume / init_cfg / '
        'stage_one_checkpoint at an intact checkpoint.'
    )


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


def _unsafe(filename: str, error: Exception) -> UnsafeCheckpointError:
    kind = _refused_type(str(error))
    return UnsafeCheckpointError(
        f"checkpoint {filename!r} needs {kind}, which is not on glag_mm's "
        'allow-list of checkpoint types (tensors, containers, numpy values, '
        'mmengine HistoryBuffer), so it was not loaded: unpickling it could '
        f'run code. If you made or trust this file, set {TRUST_ENV}=1 to '
        'load it with full unpickling (any code in the file runs).'
    )


def load_checkpoint_file(
    filename: str, map_location: Optional[Any] = None, mmap: bool = False
):
    """``torch.load`` with ``weights_only=True`` and :data:`SAFE_GLOBALS`.

    Args:
        filename: a local ``.pth`` file.
        map_location: as for :func:`torch.load`.
        mmap: map the file's tensors instead of reading them (as for
            :func:`torch.load`; the processes of a machine share the pages).

    Raises:
        FileNotFoundError: no such file.
        UnreadableCheckpointError: truncated, empty or not a checkpoint.
        UnsafeCheckpointError: the pickle needs a type off the allow-list
            (and ``GLAG_MM_TRUST_CHECKPOINTS`` is not set).
    """
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(
            f'checkpoint {filename!r} does not exist; check the path given '
            'to load_from / resume / init_cfg or the stage-one work_dir.'
        )
    check_readable(filename)
    if trusted():
        warnings.warn(
            f'{TRUST_ENV} is set: {filename!r} is loaded with full '
            'unpickling, which runs any code the file carries.',
            stacklevel=2,
        )
        return _load(filename, map_location, False, mmap)
    with torch.serialization.safe_globals(SAFE_GLOBALS):
        return _load(filename, map_location, True, mmap)


def _load(filename, map_location, weights_only: bool, mmap: bool = False):
    try:
        return torch.load(
            filename,
            map_location=map_location,
            weights_only=weights_only,
            mmap=mmap,
        )
    except pickle.UnpicklingError as error:
        if weights_only and 'Weights only load failed' in str(error):
            if 'invalid load key' not in str(error):
                raise _unsafe(filename, error) from None
        raise _unreadable(filename, str(error).splitlines()[0]) from error
    except RuntimeError as error:
        if 'PytorchStreamReader' not in str(error):
            raise
        raise _unreadable(filename, str(error).splitlines()[0]) from error
    except (EOFError, KeyError, ValueError) as error:
        reason = f'{type(error).__name__}: {error}'
        raise _unreadable(filename, reason) from error


_NUMBERED = re.compile(r'^(?:epoch|iter)_(\d+)\.pth$')


def latest_readable_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint an automatic resume should use, or None for none.

    mmengine resumes from the file named in ``work_dir/last_checkpoint``.
    If that file is unreadable (a save cut short by a kill or a full disk),
    it is skipped with a warning and the newest readable ``epoch_N.pth`` /
    ``iter_N.pth`` of the work_dir is returned instead.

    Raises:
        UnreadableCheckpointError: the work_dir has checkpoints and none is
            readable.
    """
    from mmengine.runner import find_latest_checkpoint

    if not osp.isdir(work_dir):
        return None
    latest = find_latest_checkpoint(work_dir)
    if latest is None:  # no run has saved here: start afresh, as mmengine
        return None
    numbered = sorted(
        (
            (int(found.group(1)), name)
            for name in os.listdir(work_dir)
            if (found := _NUMBERED.match(name))
        ),
        reverse=True,
    )
    candidates = [latest]
    candidates += [osp.join(work_dir, name) for _, name in numbered]
    skipped = []
    for path in dict.fromkeys(candidates):
        if not osp.isfile(path):
            continue
        try:
            check_readable(path, crc=True)
        except UnreadableCheckpointError as error:
            skipped.append(path)
            warnings.warn(f'{error} Automatic resume skips it.', stacklevel=2)
            continue
        return path
    if skipped:
        raise UnreadableCheckpointError(
            f'no readable checkpoint in {work_dir!r} to resume from '
            f'({len(skipped)} unreadable: {skipped}); delete them to start '
            'afresh, or give --resume PATH to an intact checkpoint.'
        )
    return None
