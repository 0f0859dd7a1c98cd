"""Command-line options of tools/train.py beyond mmpretrain's.

* ``--smoke``: a rehearsal of a config before a long run. Every stage
  trains one epoch (an iteration-based loop: ``SMOKE_ITERS`` iterations) on
  a :class:`~glag_tools.smoke.SmokeSubset` of about ``SMOKE_IMAGES`` of its
  real training images (every class present, the long tail's shape kept),
  validates and tests (:class:`~glag_tools.smoke.SmokeTestHook`) on about
  ``SMOKE_IMAGES`` of its real validation and test images (every class),
  computes stage two's statistics and feature cache on that subset,
  saves a checkpoint and hands it to the next stage, all in a separate
  work_dir (``<work_dir>_smoke``).
* per-stage options: with a two-stage config, ``--cfg-options
  stage2.model.head.alpha=0.1`` applies ``model.head.alpha=0.1`` to the
  stage named ``stage2`` only (a key whose first part names a stage); other
  keys apply to every stage.
* ``--threads N``: torch's CPU threads.
"""

import os.path as osp
from typing import Callable, Dict, Optional, Tuple

import torch
from mmengine.config import Config

from .config import DATALOADER_FIELDS, default_work_dir
from .smoke import SmokeSubset, SmokeTestHook  # noqa: F401  (registers them)

__all__ = [
    'SMOKE_IMAGES',
    'SMOKE_ITERS',
    'smoke_config',
    'smoke_work_dir',
    'split_stage_options',
    'add_stage_options',
    'apply_train_options',
    'set_threads',
]

SMOKE_IMAGES = 256
SMOKE_ITERS = 5


def smoke_config(
    cfg: Config, images: int = SMOKE_IMAGES, iters: int = SMOKE_ITERS
) -> Config:
    """Turn a stage's config into its rehearsal (module docstring), in place.

    A count ``tail_threshold`` of an ``AFGHead`` (default 100 images) would
    make every class of the small subset a tail class without donors, so it
    becomes the fraction 0.5 of n_max for the rehearsal.
    """
    for field in DATALOADER_FIELDS:
        loader = cfg.get(field, None)
        if not loader or not loader.get('dataset'):
            continue
        loader['dataset'] = dict(
            type='SmokeSubset',
            dataset=loader['dataset'],
            num=images,
            per_class=True,
            min_per_class=2 if field == 'train_dataloader' else 1,
        )
    train_cfg = cfg.get('train_cfg', None)
    hooks = cfg.get('default_hooks', None) or {}
    if train_cfg:
        if 'max_iters' in train_cfg:
            train_cfg['max_iters'] = min(int(train_cfg['max_iters']), iters)
            train_cfg['val_interval'] = train_cfg['max_iters']
            interval = train_cfg['max_iters']
        else:
            train_cfg['max_epochs'] = 1
            train_cfg['val_interval'] = 1
            interval = 1
        if isinstance(hooks.get('checkpoint'), dict):
            hooks['checkpoint']['interval'] = interval
    if isinstance(hooks.get('logger'), dict):
        hooks['logger']['interval'] = 1
    head = (cfg.get('model', None) or {}).get('head', None)
    if isinstance(head, dict) and str(head.get('type', '')).endswith(
        'AFGHead'
    ):
        threshold = head.get('tail_threshold', 100)
        if not (isinstance(threshold, float) and 0 < threshold < 1):
            head['tail_threshold'] = 0.5
    if cfg.get('test_dataloader', None) and cfg.get('test_evaluator', None):
        hooks = list(cfg.get('custom_hooks', None) or [])
        cfg.custom_hooks = hooks + [dict(type='SmokeTestHook')]
    cfg.smoke = True
    return cfg


def smoke_work_dir(
    work_dir: Optional[str], cfg: Config, config_path: str
) -> str:
    """``<work_dir>_smoke``: a rehearsal never mixes with a real run."""
    base = work_dir or cfg.get('work_dir', None)
    base = base or default_work_dir(config_path)
    return osp.normpath(base) + '_smoke'


def split_stage_options(
    cfg_options: Optional[dict], stage_names
) -> Tuple[dict, Dict[str, dict]]:
    """Split ``--cfg-options`` into common ones and ones per stage name."""
    common: dict = {}
    per_stage: Dict[str, dict] = {}
    for key, value in (cfg_options or {}).items():
        first, _, rest = str(key).partition('.')
        if rest and first in stage_names:
            per_stage.setdefault(first, {})[rest] = value
        else:
            common[key] = value
    return common, per_stage


def add_stage_options(cfg: Config, per_stage: Dict[str, dict]) -> None:
    """Merge per-stage options into the stages' ``cfg_options`` (in place)."""
    entries = [dict(entry) for entry in cfg.stages]
    for entry in entries:
        extra = per_stage.get(str(entry.get('name')))
        if extra:
            options = dict(entry.get('cfg_options') or {})
            options.update(extra)
            entry['cfg_options'] = options
    cfg.stages = entries


def apply_train_options(
    cfg: Config,
    config_path: str,
    cfg_options: Optional[dict],
    work_dir: Optional[str],
    smoke: bool = False,
) -> Tuple[Optional[dict], Optional[str], Optional[Callable]]:
    """Per-stage options and ``--smoke`` for tools/train.py.

    Returns:
        the common ``cfg_options``, the work_dir to use and a function to
        apply to each stage's config before the options (None without
        ``--smoke``). Per-stage options are added to ``cfg.stages``.
    """
    if cfg.get('stages', None) is not None:
        names = {str(entry.get('name')) for entry in cfg.stages}
        cfg_options, per_stage = split_stage_options(cfg_options, names)
        add_stage_options(cfg, per_stage)
    if not smoke:
        return cfg_options, work_dir, None
    return (
        cfg_options,
        smoke_work_dir(work_dir, cfg, config_path),
        (smoke_config),
    )


def set_threads(threads: Optional[int]) -> None:
    """``--threads N``: torch's intra-op CPU threads (None: unchanged)."""
    if threads is None:
        return
    if threads < 1:
        raise ValueError(f'--threads must be >= 1, got {threads}')
    torch.set_num_threads(int(threads))
