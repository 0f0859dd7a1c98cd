"""Workarounds for the pinned OpenMMLab stack, all in one place.

Each workaround names the versions it applies to in a :class:`VersionRange`
and is applied on ``import glag_mm`` only there: the version comparison
decides first, then a check of the installed code (where it adds safety)
confirms the breakage is still there. The lower bound is the oldest
version glag_mm supports (``setup.py``) when the broken code is older than
that; the upper bound is the newest release verified, i.e. the pinned one,
where no release fixes it yet (a newer version then runs unpatched until
it is verified and the bound moved). Each applied one logs why to this
module's logger and is recorded in :data:`APPLIED`. Each has a test in
``tests/test_compat.py`` that fails without it, and tests on each side of
each bound in ``tests/test_compat_ranges.py``.

1. :func:`patch_empty_dataset_message` (:data:`EMPTY_DATASET`, mmengine
   >= 0.8.0, <= 0.10.7): ``BaseDataset._serialize_data`` fails on an empty
   data list with a bare ``need at least one array to concatenate``; the
   message names the dataset, and the loader whose loop builds it. The code
   is unchanged since mmengine 0.1.0 and on mmengine's main after 0.10.7.
2. :func:`patch_run_timestamp` (:data:`RUN_TIMESTAMP_RANGE`, mmengine
   >= 0.8.0, <= 0.10.7): ``Runner.setup_env`` names a run's log folder
   ``work_dir/<YYYYmmdd_HHMMSS>`` by the second the Runner was built (since
   mmengine 0.1.0, still on its main), so a run started in the same second
   as an earlier one in the same work_dir (a resume straight after a
   failure) appends its log and scalars to that run's files and replaces
   its config dump; the Runner now waits for a second whose folder does not
   exist yet.
3. :func:`patch_visualization_hook` (:data:`VISUALIZATION_HOOK`, mmpretrain
   >= 1.0.0, <= 1.2.0): ``VisualizationHook.after_val_iter`` reads
   ``runner.train_loop`` on every validation batch, before it looks at
   ``enable`` (the same in every mmpretrain release and on its main), so a
   validation-only pass (``tools/test.py`` choosing a post-hoc tau,
   ``runner.val()``) builds the train loop and its training dataset for
   nothing; a disabled hook (mmpretrain's default runtime) now returns
   first.

:data:`RUNNER_WRAPPERS` (mmengine >= 0.8.0, <= 0.10.7) bounds the same way
the two wrappers of ``Runner`` in :mod:`glag_mm.engine.runner_defaults`
(its docstring says why mmengine offers no extension point for them).

Not a workaround, and so not bounded: :func:`patch_checkpoint_loading`
registers glag_mm's loaders for every checkpoint scheme through mmengine's
documented ``CheckpointLoader.register_scheme`` (local files through
:func:`glag_mm.safe_load.load_checkpoint_file`, http(s), torchvision,
open-mmlab, mmcls, pavi and s3 through :mod:`glag_mm.remote_load`). It is
the project's loading policy (``weights_only=True`` and an allow-list), not
a fix of one version: every mmengine release up to 0.10.7 calls
``torch.load`` without ``weights_only`` and its main after 0.10.7 passes
``weights_only=False``. A scheme whose loader already passes
``weights_only=True`` (a user's registration) is left alone.

Removed: ``'<package>::'`` base configs need ``pkg_resources`` in mmengine
<= 0.10.7 (its main reads :mod:`importlib.metadata`), which setuptools >= 82
no longer ships. ``setuptools<82`` is a requirement of glag_mm
(``setup.py``, ``requirements.txt``), so pip keeps ``pkg_resources``
installed and no patch of mmengine's package lookup is needed.
"""

import dataclasses
import functools
import importlib
import inspect
import logging
import os.path as osp
import time
from types import SimpleNamespace
from typing import Callable, Dict, Optional

import torch
from packaging.version import InvalidVersion, Version

from .safe_load import load_checkpoint_file

logger = logging.getLogger(__name__)

#: patch name -> the reason it was applied in this process
APPLIED: Dict[str, str] = {}


def _applied(name: str, reason: str) -> None:
    APPLIED[name] = reason
    logger.info('%s applied: %s', name, reason)


@dataclasses.dataclass(frozen=True)
class VersionRange:
    """The versions of one package a workaround applies to (inclusive).

    Args:
        package: The module whose ``__version__`` is compared
            (``'mmengine'``, ``'mmpretrain'``).
        low: The oldest version the workaround applies to.
        high: The newest version it applies to (the newest verified).
    """

    package: str
    low: str
    high: str

    def installed(self) -> str:
        """The version of :attr:`package` imported in this process."""
        return importlib.import_module(self.package).__version__

    def applies(self, version: Optional[str] = None) -> bool:
        """Whether ``version`` (default: the installed one) is in range;
        a version that is not PEP 440 (a local build) is not."""
        try:
            found = Version(version or self.installed())
        except InvalidVersion:
            return False
        return Version(self.low) <= found <= Version(self.high)

    def __str__(self) -> str:
        return f'{self.package} >= {self.low}, <= {self.high}'


def _in_range(name: str, versions: VersionRange) -> bool:
    """The version gate of workaround ``name``; logs when it is skipped."""
    if versions.applies():
        return True
    logger.info(
        '%s not applied: %s %s is outside %s, where it is needed',
        name,
        versions.package,
        versions.installed(),
        versions,
    )
    return False


#: mmengine's BaseDataset._serialize_data fails bare on an empty list
EMPTY_DATASET = VersionRange('mmengine', '0.8.0', '0.10.7')
#: mmengine's Runner.setup_env names the log folder by the second
RUN_TIMESTAMP_RANGE = VersionRange('mmengine', '0.8.0', '0.10.7')
#: mmpretrain's VisualizationHook builds the train loop when disabled
VISUALIZATION_HOOK = VersionRange('mmpretrain', '1.0.0', '1.2.0')
#: glag_mm's wrappers of Runner (glag_mm.engine.runner_defaults) rely on
#: ``register_hooks(default_hooks, custom_hooks)`` and ``from_cfg(cfg)``
RUNNER_WRAPPERS = VersionRange('mmengine', '0.8.0', '0.10.7')


def load_from_local(filename: str, map_location=None):
    """mmengine's local scheme through the allow-list."""
    return load_checkpoint_file(filename, map_location=map_location)


def loader_needs_replacing(loader: Optional[Callable]) -> bool:
    """Whether a local checkpoint loader lacks ``weights_only=True``."""
    if loader is load_from_local:
        return False
    if loader is None:
        return True
    try:
        source = inspect.getsource(loader)
    except (OSError, TypeError):  # no source: assume the unsafe default
        return True
    return 'weights_only=True' not in source.replace(' ', '')


def patch_checkpoint_loading() -> bool:
    """Register glag_mm's loaders for every checkpoint scheme (local and
    remote) through ``CheckpointLoader.register_scheme``; True if any was
    registered now.

    A registration through mmengine's documented extension point, not a
    patch, and the project's loading policy for every mmengine version, so
    it has no version range; a scheme whose loader already passes
    ``weights_only=True`` is left alone.
    """
    import mmengine
    from mmengine.runner.checkpoint import CheckpointLoader

    from .remote_load import REMOTE_SCHEMES

    schemes = {('',): load_from_local, **REMOTE_SCHEMES}
    replaced = []
    for prefixes, loader in schemes.items():
        current = [CheckpointLoader._schemes.get(p) for p in prefixes]
        if any(c is not loader and loader_needs_replacing(c) for c in current):
            CheckpointLoader.register_scheme(
                prefixes=list(prefixes), loader=loader, force=True
            )
            replaced += [p or 'local' for p in prefixes]
    if not replaced:
        return False
    _applied(
        'patch_checkpoint_loading',
        f'mmengine {mmengine.__version__} loads checkpoints with torch.load '
        '(URLs with torch.hub.load_state_dict_from_url) without '
        f'weights_only=True, which on torch {torch.__version__} either '
        'refuses the message-hub objects of its own checkpoints (>= 2.6) or '
        'unpickles any code a checkpoint carries; the schemes '
        f'{replaced} now load with weights_only=True and '
        'glag_mm.safe_load.SAFE_GLOBALS',
    )
    return True


def empty_dataset_message_unclear() -> bool:
    """Whether mmengine's serialisation of an empty data list fails bare."""
    from mmengine.dataset import BaseDataset

    try:
        BaseDataset._serialize_data(SimpleNamespace(data_list=[]))
    except ValueError as error:
        return 'at least one array' in str(error)
    return False


#: Runner methods that build a loop's loader -> the config field
_LOOP_BUILDERS = {
    'build_train_loop': 'train_dataloader',
    'build_val_loop': 'val_dataloader',
    'build_test_loop': 'test_dataloader',
}


def _loader_being_built() -> Optional[str]:
    """The loader (``train_dataloader`` ...) whose dataset is being built,
    from the Runner method on the call stack; None outside a Runner."""
    frame = inspect.currentframe()
    while frame is not None:
        name = _LOOP_BUILDERS.get(frame.f_code.co_name)
        if name is not None:
            return name
        frame = frame.f_back
    return None


def patch_empty_dataset_message() -> bool:
    """Name an empty dataset when mmengine builds it; True if now."""
    from mmengine.dataset import BaseDataset

    original = BaseDataset._serialize_data
    if not _in_range('patch_empty_dataset_message', EMPTY_DATASET):
        return False
    if not empty_dataset_message_unclear():  # also once patched
        return False

    @functools.wraps(original)
    def _serialize_data(self):
        if not self.data_list:
            where = ', '.join(
                f'{key}={getattr(self, key)!r}'
                for key in ('ann_file', 'data_root', 'data_prefix')
                if getattr(self, key, None)
            )
            loader = _loader_being_built()
            raise ValueError(
                f'{loader + ".dataset: " if loader else ""}'
                f'{type(self).__name__}({where}) holds no sample: point '
                'it at a non-empty annotation file or folder, or change the '
                'split setting that emptied it.'
            )
        return original(self)

    BaseDataset._serialize_data = _serialize_data
    _applied(
        'patch_empty_dataset_message',
        f'mmengine {EMPTY_DATASET.installed()} (in {EMPTY_DATASET}) '
        'serialises an empty data list with a bare '
        '"need at least one array to concatenate"',
    )
    return True


#: mmengine's format for a run's timestamp, which names its log folder
RUN_TIMESTAMP = '%Y%m%d_%H%M%S'


def _unpatched_source_has(func: Callable, text: str) -> bool:
    """Whether ``func``'s source holds ``text``; false for a wrapper (our
    patch) or where the source cannot be read."""
    if hasattr(func, '__wrapped__'):
        return False
    try:
        return text in inspect.getsource(func)
    except (OSError, TypeError):
        return False


def run_folders_reuse_a_second() -> bool:
    """Whether mmengine's Runner takes its log folder's name from the clock
    (``Runner.setup_env`` formats the start time to the second)."""
    from mmengine.runner import Runner

    return _unpatched_source_has(Runner.setup_env, repr(RUN_TIMESTAMP))


def wait_for_unused_second(work_dir: str, limit: float = 2.0) -> float:
    """Sleep until ``work_dir`` has no folder named for the current second.

    Returns the seconds waited: 0 in the usual case, under a second after
    a run that started in the same second, at most ``limit`` (a folder
    named for a later time, after the clock was set back, is not waited
    for any longer).
    """
    start = time.monotonic()
    while osp.isdir(osp.join(work_dir, time.strftime(RUN_TIMESTAMP))):
        if time.monotonic() - start >= limit:
            break
        time.sleep(0.02)
    return time.monotonic() - start


def patch_run_timestamp() -> bool:
    """Give each Runner in a work_dir its own log folder; True if now."""
    from mmengine.runner import Runner

    if not _in_range('patch_run_timestamp', RUN_TIMESTAMP_RANGE):
        return False
    if not run_folders_reuse_a_second():  # also once patched
        return False
    original = Runner.setup_env

    @functools.wraps(original)
    def setup_env(self, env_cfg):
        # every rank waits on its own clock; rank 0's start time, taken
        # after its wait, is the one mmengine broadcasts
        wait_for_unused_second(self._work_dir)
        return original(self, env_cfg)

    Runner.setup_env = setup_env
    _applied(
        'patch_run_timestamp',
        f'mmengine {RUN_TIMESTAMP_RANGE.installed()} (in '
        f'{RUN_TIMESTAMP_RANGE}) names a log folder by the second its run '
        'started, so a '
        'run started within the same second in the same work_dir would '
        "mix its log and scalars into the earlier run's",
    )
    return True


def visualization_hook_builds_train_loop() -> bool:
    """Whether mmpretrain's VisualizationHook reads ``runner.train_loop``
    in ``after_val_iter``."""
    from mmpretrain.engine.hooks import VisualizationHook

    return _unpatched_source_has(
        VisualizationHook.after_val_iter, 'runner.train_loop'
    )


def patch_visualization_hook() -> bool:
    """A disabled VisualizationHook skips validation batches before it
    builds the train loop; True if applied now."""
    from mmpretrain.engine.hooks import VisualizationHook

    if not _in_range('patch_visualization_hook', VISUALIZATION_HOOK):
        return False
    if not visualization_hook_builds_train_loop():
        return False
    original = VisualizationHook.after_val_iter

    @functools.wraps(original)
    def after_val_iter(self, runner, batch_idx, data_batch, outputs):
        if self.enable is False:  # what _draw_samples checks first
            return None
        return original(self, runner, batch_idx, data_batch, outputs)

    VisualizationHook.after_val_iter = after_val_iter
    _applied(
        'patch_visualization_hook',
        f'mmpretrain {VISUALIZATION_HOOK.installed()} (in '
        f"{VISUALIZATION_HOOK})'s VisualizationHook builds the train loop "
        '(and its dataset) on every validation batch even when disabled',
    )
    return True


def apply_all() -> None:
    """Apply every workaround the installed versions need (idempotent)."""
    patch_checkpoint_loading()
    patch_empty_dataset_message()
    patch_run_timestamp()
    patch_visualization_hook()
