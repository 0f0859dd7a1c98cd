"""Workarounds for the pinned OpenMMLab stack, all in one place.

Each fix is applied once, when :mod:`glag_mm` is imported, and each has a
test in ``tests/test_compat.py`` that fails without it:

1. :func:`patch_checkpoint_loading` - mmengine 0.10.7 calls ``torch.load``
   without ``weights_only``; torch >= 2.6 defaults it to ``True`` and refuses
   the message-hub objects mmengine stores in its checkpoints, so ``resume``,
   ``load_from``, ``init_cfg=dict(type='Pretrained')`` and ``tools/test.py``
   fail with ``UnpicklingError``.
2. :func:`patch_package_lookup` - ``_base_ = 'mmpretrain::...'`` resolves the
   package through ``pkg_resources``, which setuptools >= 82 removed. The
   replacement answers from :mod:`importlib.metadata` / :mod:`importlib.util`.
   It is in effect wherever glag_mm is imported before the config is read
   (our ``tools/``); ``custom_imports`` inside a config runs too late, which
   is why the requirements also pin ``setuptools<82``.
3. :func:`patch_cpu_distributed` - on a machine without CUDA, mmengine calls
   ``torch.cuda.set_device`` while initialising the process group and wraps
   the model in DDP with ``device_ids=[LOCAL_RANK]``; both fail on CPU. The
   patch initialises a gloo group and wraps with ``device_ids=None`` there,
   and changes nothing where CUDA is available. The group is destroyed at
   interpreter exit, since a live gloo group can abort a finished rank.
"""

import atexit
import functools
import importlib.util
import os
import os.path as osp
import warnings

import torch

__all__ = [
    'apply_all',
    'patch_checkpoint_loading',
    'patch_package_lookup',
    'patch_cpu_distributed',
    'load_from_local',
]

warnings.filterwarnings('ignore', message='.*MultiScaleDeformableAttention.*')


def load_from_local(filename: str, map_location=None):
    """Load a local checkpoint written by mmengine (trusted: our own files).

    mmengine names its log line after this function, so the name stays.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(
            f'checkpoint {filename!r} does not exist; check the path given '
            'to load_from / resume / init_cfg or the stage-one work_dir.'
        )
    return torch.load(filename, map_location=map_location, weights_only=False)


def patch_checkpoint_loading() -> None:
    """Make mmengine's local checkpoint scheme load full mmengine files."""
    from mmengine.runner.checkpoint import CheckpointLoader

    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local, force=True
    )


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


def patch_package_lookup() -> None:
    """Resolve ``pkg::`` base configs without ``pkg_resources``.

    Applied whether or not ``pkg_resources`` is importable, so that behaviour
    is the same everywhere and its deprecation warning never shows.
    """
    import mmengine.config.config as config_module
    import mmengine.utils.package_utils as package_utils

    for module in (package_utils, config_module):
        module.get_installed_path = _installed_path
        module.is_installed = _is_installed


def _cpu_only() -> bool:
    return not torch.cuda.is_available()


def _destroy_process_group() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def patch_cpu_distributed() -> None:
    """Let mmengine's Runner train with torchrun on CPU (gloo, no devices)."""
    import mmengine.dist.utils as dist_utils
    from mmengine.model import is_model_wrapper
    from mmengine.runner import Runner

    if getattr(dist_utils._init_dist_pytorch, '_glag_patched', False):
        return
    original_init = dist_utils._init_dist_pytorch

    @functools.wraps(original_init)
    def init_dist_pytorch(backend='nccl', init_backend='torch', **kwargs):
        if not _cpu_only():
            return original_init(backend, init_backend=init_backend, **kwargs)
        torch.distributed.init_process_group(
            backend='gloo',
            rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']),
            **kwargs,
        )
        # A gloo group still alive when the interpreter exits can abort the
        # process ('terminate called without an active exception'), which
        # torchrun reports as a failed rank after a finished run.
        atexit.register(_destroy_process_group)

    init_dist_pytorch._glag_patched = True
    dist_utils._init_dist_pytorch = init_dist_pytorch

    original_wrap = Runner.wrap_model

    @functools.wraps(original_wrap)
    def wrap_model(self, model_wrapper_cfg, model):
        if self.distributed and _cpu_only() and not is_model_wrapper(model):
            model_wrapper_cfg = dict(model_wrapper_cfg or {})
            if model_wrapper_cfg.get('type', 'MMDistributedDataParallel') in (
                'MMDistributedDataParallel',
                'DistributedDataParallel',
            ):
                model_wrapper_cfg.setdefault(
                    'type', 'MMDistributedDataParallel'
                )
                model_wrapper_cfg['device_ids'] = None
                model_wrapper_cfg.setdefault('broadcast_buffers', False)
                model_wrapper_cfg.setdefault(
                    'find_unused_parameters',
                    self.cfg.get('find_unused_parameters', False),
                )
        return original_wrap(self, model_wrapper_cfg, model)

    Runner.wrap_model = wrap_model


def apply_all() -> None:
    """Apply every workaround (idempotent)."""
    patch_checkpoint_loading()
    patch_package_lookup()
    patch_cpu_distributed()
