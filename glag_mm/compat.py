"""Workarounds for the pinned OpenMMLab stack, all in one place.

Each is applied on ``import glag_mm`` only where the installed versions
need it (checked, not assumed), logs why to this module's logger, is
recorded in :data:`APPLIED` and has a test in ``tests/test_compat.py`` that
fails without it:

1. :func:`patch_checkpoint_loading`: mmengine 0.10.7's checkpoint loaders
   call ``torch.load`` (the URL ones ``torch.hub.load_state_dict_from_url``)
   without ``weights_only``; local files load through
   :func:`glag_mm.safe_load.load_checkpoint_file` instead, and every remote
   scheme (http(s), torchvision, open-mmlab, mmcls, pavi, s3) through the
   loaders of :mod:`glag_mm.remote_load`, which end there too.
2. :func:`patch_package_lookup`: ``_base_ = 'mmpretrain::...'`` needs
   ``pkg_resources``, gone in setuptools >= 82; answered from
   :mod:`importlib.metadata` (``custom_imports`` runs too late for it, hence
   also the ``setuptools<82`` pin).
3. :func:`patch_empty_dataset_message`: mmengine 0.10.7 fails on an empty
   data list with a bare ``need at least one array to concatenate``; the
   message names the dataset, and the loader whose loop builds it.
4. :func:`patch_run_timestamp`: mmengine 0.10.7 names a run's log folder
   ``work_dir/<YYYYmmdd_HHMMSS>`` by the second the Runner was built, so a
   run started in the same second as an earlier one in the same work_dir
   (a resume straight after a failure) appends its log and scalars to that
   run's files and replaces its config dump; the Runner now waits for a
   second whose folder does not exist yet.
5. :func:`patch_visualization_hook`: mmpretrain 1.2's ``VisualizationHook``
   reads ``runner.train_loop`` on every validation batch, before it looks
   at ``enable``, so a validation-only pass (``tools/test.py`` choosing a
   post-hoc tau, ``runner.val()``) builds the train loop and its training
   dataset for nothing; a disabled hook (mmpretrain's default runtime) now
   returns first.
"""

import functools
import importlib.util
import inspect
import logging
import os.path as osp
import time
from types import SimpleNamespace
from typing import Callable, Dict, Optional

import torch

from .safe_load import load_checkpoint_file

logger = logging.getLogger(__name__)

#: patch name -> the reason it was applied in this process
APPLIED: Dict[str, str] = {}


def _applied(name: str, reason: str) -> None:
    APPLIED[name] = reason
    logger.info('%s applied: %s', name, reason)


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
    """Load checkpoints of every scheme with the allow-list; True if
    applied now."""
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


def _installed_path(package: str) -> str:
    """Directory of an installed package, without ``pkg_resources``."""
    from importlib.metadata import PackageNotFoundError, distribution

    names = [package, package.replace('-', '_')]
    try:
        top = distribution(package).read_text('top_level.txt') or ''
        names = top.split()[:1] + names
    except PackageNotFoundError:
        pass
    for name in names:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.origin is not None:
            return osp.dirname(spec.origin)
    raise RuntimeError(
        f'package {package!r} is not installed (needed by a '
        f"'{package}::' base config); install it with pip."
    )


def _is_installed(package: str) -> bool:
    try:
        _installed_path(package)
        return True
    except RuntimeError:
        return False


def pkg_resources_missing() -> bool:
    """Whether ``import pkg_resources`` would fail (setuptools >= 82)."""
    try:
        return importlib.util.find_spec('pkg_resources') is None
    except (ImportError, ValueError):
        return True


def patch_package_lookup() -> bool:
    """Resolve ``pkg::`` bases without ``pkg_resources``; True if now."""
    import mmengine.config.config as config_module
    import mmengine.utils.package_utils as package_utils

    if not pkg_resources_missing():
        return False
    if package_utils.get_installed_path is _installed_path:
        return False
    for module in (package_utils, config_module):
        module.get_installed_path = _installed_path
        module.is_installed = _is_installed
    _applied(
        'patch_package_lookup',
        'pkg_resources is missing (setuptools >= 82), which mmengine needs '
        "for '<package>::' base configs; they are resolved with "
        'importlib.metadata instead',
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
        'mmengine serialises an empty data list with a bare '
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
        'mmengine names a log folder by the second its run started, so a '
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
        "mmpretrain's VisualizationHook builds the train loop (and its "
        'dataset) on every validation batch even when disabled',
    )
    return True


def apply_all() -> None:
    """Apply every workaround the installed versions need (idempotent)."""
    patch_checkpoint_loading()
    patch_package_lookup()
    patch_empty_dataset_message()
    patch_run_timestamp()
    patch_visualization_hook()
