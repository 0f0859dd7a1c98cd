"""Turn a config and command-line flags into a config a Runner can train.

:func:`prepare_train_config` and :func:`prepare_test_config` do what
mmpretrain's ``tools/train.py`` and ``tools/test.py`` do in ``merge_args``,
plus what glag_mm needs on top:

* ``persistent_workers`` is only defaulted to True for dataloaders that have
  worker processes (PyTorch refuses it with ``num_workers=0``, which is how
  small in-memory datasets train best), and ``pin_memory`` only defaults to
  True where CUDA is available (pinning has no use without a GPU);
* ``--amp`` is refused on a machine without CUDA, with a clear message;
* :class:`~glag_mm.engine.ClassCountsHook` is added to ``custom_hooks`` when
  the config lacks it, so the losses and metrics find the training class
  counts, and so is :class:`~glag_mm.engine.NonFiniteCheckHook` to training
  configs (a NaN or Inf stops training before a checkpoint keeps it);
* ``--resume`` without a path skips an unreadable latest checkpoint (with a
  warning) for the newest readable one;
* on a CPU machine, distributed runs get a DDP wrapper without devices
  (:func:`~glag_tools.launch.set_cpu_model_wrapper`);
* every string ``'{stage_one_checkpoint}'`` anywhere in the config is
  replaced by the stage-one checkpoint (``cfg.stage_one_checkpoint``), see
  :func:`resolve_stage_one_checkpoint`.

This module is part of the library behind ``tools/`` (``glag_tools``).
"""

import os.path as osp
from copy import deepcopy
from typing import Optional

import torch
from mmengine.config import Config, ConfigDict
from mmengine.runner import find_latest_checkpoint

from glag_mm.safe_load import CheckpointError

from .config_hooks import (
    ConfigError,
    add_class_counts_hook,
    add_default_hook,
    add_posthoc_tau_hook,
    uses_validation_tau,
    validation_options,
)
from .finished import latest_readable_checkpoint
from .launch import set_cpu_model_wrapper
from .stage_one_key import (
    STAGE_ONE_PLACEHOLDER,
    resolve_stage_one_checkpoint,
    uses_stage_one_checkpoint,
)

__all__ = [
    'ConfigError',
    'STAGE_ONE_PLACEHOLDER',
    'DATALOADER_FIELDS',
    'prepare_train_config',
    'prepare_test_config',
    'set_dataloader_defaults',
    'add_class_counts_hook',
    'add_default_hook',
    'uses_stage_one_checkpoint',
    'uses_validation_tau',
    'validation_options',
    'resolve_stage_one_checkpoint',
    'default_work_dir',
]

DATALOADER_FIELDS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def default_work_dir(config_path: str) -> str:
    """``./work_dirs/<config name>``, as mmpretrain's tools choose it."""
    stem = osp.splitext(osp.basename(config_path))[0]
    return osp.join('./work_dirs', stem)


def _check_amp() -> None:
    if not torch.cuda.is_available():
        raise ConfigError(
            '--amp needs a CUDA device (automatic mixed precision runs on '
            'the GPU); this machine has none. Drop --amp to train in fp32.'
        )


def set_dataloader_defaults(
    cfg: Config,
    fields=DATALOADER_FIELDS,
    pin_memory: bool = True,
    persistent_workers: bool = True,
) -> None:
    """Default ``pin_memory``, ``persistent_workers`` and ``collate_fn``.

    The config's own values win over the defaults, as in mmpretrain's tools;
    ``pin_memory=False`` / ``persistent_workers=False`` (the tools'
    ``--no-pin-memory`` / ``--no-persistent-workers``) force them off.
    """
    for field in fields:
        if cfg.get(field, None) is None:
            continue
        loader = ConfigDict(
            pin_memory=pin_memory and torch.cuda.is_available(),
            persistent_workers=persistent_workers,
            collate_fn=dict(type='default_collate'),
        )
        loader.update(cfg[field])
        if not pin_memory:
            loader['pin_memory'] = False
        if not persistent_workers:
            loader['persistent_workers'] = False
        cfg[field] = loader


def _fix_persistent_workers(cfg: Config) -> None:
    """PyTorch refuses ``persistent_workers=True`` without workers."""
    for field in DATALOADER_FIELDS:
        loader = cfg.get(field, None)
        if isinstance(loader, dict) and not loader.get('num_workers', 0):
            if loader.get('persistent_workers', False):
                loader['persistent_workers'] = False


def _latest_readable(work_dir: str) -> Optional[str]:
    try:
        return latest_readable_checkpoint(work_dir)
    except CheckpointError as error:
        raise ConfigError(str(error)) from error


def _set_work_dir(cfg: Config, work_dir: Optional[str], config_path) -> None:
    # priority: command line > config file > config file name
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = default_work_dir(config_path or cfg.filename)


def prepare_train_config(
    cfg: Config,
    *,
    config_path: Optional[str] = None,
    work_dir: Optional[str] = None,
    launcher: str = 'none',
    resume: Optional[str] = None,
    amp: bool = False,
    auto_scale_lr: bool = False,
    no_validate: bool = False,
    pin_memory: bool = True,
    persistent_workers: bool = True,
    cfg_options: Optional[dict] = None,
    stage_one_checkpoint: Optional[str] = None,
) -> Config:
    """Merge ``tools/train.py``'s flags into ``cfg`` (in place) and return it.

    Args:
        cfg: the loaded config.
        config_path: its file, for the default work_dir.
        work_dir: ``--work-dir``.
        launcher: ``--launcher`` ('none', 'pytorch', 'slurm', 'mpi').
        resume: ``--resume``: None, ``'auto'`` (latest checkpoint of the
            work_dir) or a checkpoint path.
        amp: ``--amp`` (CUDA only).
        auto_scale_lr: ``--auto-scale-lr``.
        no_validate: ``--no-validate``.
        pin_memory: False for ``--no-pin-memory``.
        persistent_workers: False for ``--no-persistent-workers``.
        cfg_options: ``--cfg-options``, merged last.
        stage_one_checkpoint: fallback for ``cfg.stage_one_checkpoint``.
    """
    if no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None
    cfg.launcher = launcher
    _set_work_dir(cfg, work_dir, config_path)
    if amp:
        _check_amp()
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if resume == 'auto':
        # mmengine resumes from the work_dir's latest checkpoint only when
        # load_from is None, and would resume from load_from otherwise; a
        # run with no checkpoint of its own yet starts afresh and keeps a
        # configured load_from (e.g. stage one's weights). An unreadable
        # latest checkpoint is skipped for the newest readable one.
        latest = _latest_readable(cfg.work_dir)
        if latest is not None:
            cfg.resume = True
            # None: mmengine resumes from work_dir/last_checkpoint itself
            recorded = find_latest_checkpoint(cfg.work_dir)
            cfg.load_from = None if latest == recorded else latest
        else:
            cfg.resume = False
    elif resume is not None:
        cfg.resume = True
        cfg.load_from = resume
    if auto_scale_lr:
        if not isinstance(cfg.get('auto_scale_lr', None), dict):
            raise ConfigError(
                '--auto-scale-lr needs auto_scale_lr=dict(base_batch_size=N)'
                ' in the config (N: the batch size its lr was tuned for).'
            )
        cfg.auto_scale_lr.enable = True
    set_dataloader_defaults(
        cfg, pin_memory=pin_memory, persistent_workers=persistent_workers
    )
    if cfg_options:
        cfg.merge_from_dict(deepcopy(cfg_options))
    _fix_persistent_workers(cfg)
    add_class_counts_hook(cfg)
    add_posthoc_tau_hook(cfg)
    add_default_hook(cfg, 'NonFiniteCheckHook')
    set_cpu_model_wrapper(cfg)
    owner = config_path or cfg.filename or 'this config'
    return resolve_stage_one_checkpoint(cfg, stage_one_checkpoint, owner)


def prepare_test_config(
    cfg: Config,
    checkpoint: str,
    *,
    config_path: Optional[str] = None,
    work_dir: Optional[str] = None,
    launcher: str = 'none',
    amp: bool = False,
    show: bool = False,
    show_dir: Optional[str] = None,
    interval: int = 1,
    wait_time: float = 2,
    tta: bool = False,
    pin_memory: bool = True,
    cfg_options: Optional[dict] = None,
    stage_one_checkpoint: Optional[str] = None,
) -> Config:
    """Merge ``tools/test.py``'s flags into ``cfg`` (in place) and return it.

    The tested checkpoint replaces every weight of the model, so a stage-two
    config whose ``'{stage_one_checkpoint}'`` is not given otherwise gets
    ``stage_one_checkpoint`` (the driver passes stage one's checkpoint when
    its work_dir has one) or, failing that, the tested checkpoint itself.
    """
    cfg.launcher = launcher
    _set_work_dir(cfg, work_dir, config_path)
    cfg.load_from = checkpoint
    if amp:
        _check_amp()
        cfg.test_cfg.fp16 = True
    if show or show_dir is not None:
        hooks = cfg.get('default_hooks', {}) or {}
        if 'visualization' not in hooks:
            raise ConfigError(
                '--show / --show-dir need default_hooks.visualization='
                "dict(type='VisualizationHook') in the config."
            )
        vis = cfg.default_hooks.visualization
        vis.enable = True
        vis.show = show
        vis.wait_time = wait_time
        vis.out_dir = show_dir
        vis.interval = interval
    if tta:
        _apply_tta(cfg)
    set_dataloader_defaults(
        cfg, fields=('test_dataloader',), pin_memory=pin_memory
    )
    if cfg_options:
        cfg.merge_from_dict(deepcopy(cfg_options))
    _fix_persistent_workers(cfg)
    add_class_counts_hook(cfg)
    add_posthoc_tau_hook(cfg)
    set_cpu_model_wrapper(cfg)
    owner = config_path or cfg.filename or 'this config'
    fallback = stage_one_checkpoint or checkpoint
    return resolve_stage_one_checkpoint(cfg, fallback, owner)


def _apply_tta(cfg: Config) -> None:
    """Flip test-time augmentation, as mmpretrain's ``tools/test.py``."""
    if 'tta_model' not in cfg:
        cfg.tta_model = dict(type='mmpretrain.AverageClsScoreTTA')
    if 'tta_pipeline' not in cfg:
        test_pipeline = cfg.test_dataloader.dataset.pipeline
        cfg.tta_pipeline = deepcopy(test_pipeline)
        cfg.tta_pipeline[-1] = dict(
            type='TestTimeAug',
            transforms=[
                [
                    dict(type='RandomFlip', prob=1.0),
                    dict(type='RandomFlip', prob=0.0),
                ],
                [test_pipeline[-1]],
            ],
        )
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
