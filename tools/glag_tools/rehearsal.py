"""Command-line options of tools/train.py beyond mmpretrain's.

* ``--smoke``: a rehearsal of a config before a long run, in minutes on a
  CPU. Applied to each stage's config after ``--cfg-options`` (so options
  address the config as written), it changes the input size and the image
  count, never the model or the stage-two settings:

  - pipelines: images of ``SMOKE_SIZE`` pixels (every crop and resize of
    the config scaled by ``SMOKE_SIZE`` / its largest crop; a config whose
    crops are that small already keeps them);
  - training set: a :class:`~glag_tools.smoke.SmokeSubset` of a few images
    per class chosen by :func:`~glag_tools.smoke.rehearsal_counts` from
    the real training counts, so that every count rule of the run (tail
    class or not, the 2 images a covariance needs, ``n_max``) decides
    every class as on the real set; ``AFGHead``'s ``tail_threshold`` and
    ``n_max`` (and ``GLAGDistillHook``'s) are written in the kept counts'
    scale; the many / medium / few groups of ``LongTailAccuracy`` are those
    of the real training counts (its ``class_counts``);
  - validation and test sets: about one image per class;
  - one epoch (an iteration-based loop: ``SMOKE_ITERS`` iterations), then
    validation and a test (:class:`~glag_tools.smoke.SmokeTestHook`); stage
    two's statistics and feature cache on the subset; a checkpoint handed
    to the next stage; all in ``<work_dir>_smoke``.
* per-stage options: with a two-stage config, ``--cfg-options
  stage2.model.head.alpha=0.1`` applies ``model.head.alpha=0.1`` to the
  stage named ``stage2`` only (a key whose first part names a stage); other
  keys apply to every stage.
* ``--threads N``: torch's CPU threads.
"""

import os.path as osp
from copy import deepcopy
from typing import Callable, Dict, List, Optional, Tuple

import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmpretrain.registry import DATASETS

from glag_mm.core.calibration import tail_classes
from glag_mm.core.class_counts import dataset_labels

from .config import DATALOADER_FIELDS, default_work_dir
from .smoke import (  # noqa: F401  (SmokeSubset, SmokeTestHook: registered)
    SmokeSubset,
    SmokeTestHook,
    rehearsal_counts,
)

__all__ = [
    'SMOKE_IMAGES',
    'SMOKE_ITERS',
    'SMOKE_SIZE',
    'smoke_config',
    'rescale_pipelines',
    'smoke_counts',
    'smoke_work_dir',
    'split_stage_options',
    'add_stage_options',
    'apply_train_options',
    'set_threads',
]

SMOKE_IMAGES = 256  # training images at least, where the set has them
SMOKE_ITERS = 5
SMOKE_SIZE = 32

# transform type -> its size arguments (pixels)
SIZE_KEYS = {
    'RandomResizedCrop': ('scale',),
    'CenterCrop': ('crop_size',),
    'RandomCrop': ('crop_size', 'padding'),
    'ResizeEdge': ('scale',),
    'Resize': ('scale',),
    'EfficientNetRandomCrop': ('scale',),
    'EfficientNetCenterCrop': ('crop_size',),
}
CROPS = {
    'RandomResizedCrop': 'scale',
    'CenterCrop': 'crop_size',
    'RandomCrop': 'crop_size',
    'EfficientNetRandomCrop': 'scale',
    'EfficientNetCenterCrop': 'crop_size',
}


def _transforms(node):
    """Every transform dict (a ``type`` of :data:`SIZE_KEYS`) in ``node``."""
    if isinstance(node, dict):
        if node.get('type') in SIZE_KEYS:
            yield node
        for value in node.values():
            yield from _transforms(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _transforms(value)


def _largest(value) -> int:
    return max(value) if isinstance(value, (list, tuple)) else int(value)


def rescale_pipelines(cfg: Config, size: int = SMOKE_SIZE) -> float:
    """Scale every crop and resize of ``cfg`` so its largest crop is
    ``size`` pixels (in place); returns the factor (1.0: unchanged)."""
    found = list(_transforms(cfg._cfg_dict))
    crops = [
        _largest(t[CROPS[t['type']]])
        for t in found
        if t['type'] in CROPS and t.get(CROPS[t['type']]) is not None
    ]
    if not crops or max(crops) <= size:
        return 1.0
    factor = size / max(crops)

    def scaled(value):
        if isinstance(value, (list, tuple)):
            return type(value)(scaled(v) for v in value)
        if isinstance(value, (int, float)) and value > 0:
            return max(1, round(value * factor))
        return value

    for t in found:
        for key in SIZE_KEYS[t['type']]:
            if key in t:
                t[key] = scaled(t[key])
    return factor


def _is_type(node, name: str) -> bool:
    return isinstance(node, dict) and str(node.get('type', '')).endswith(name)


def _count_rules(cfg: Config, counts: List[int]) -> Tuple[dict, List[int]]:
    """Where the config compares class counts with a threshold: (owner
    dict -> its count keys, breakpoints). A fraction ``tail_threshold``
    of n_max becomes the count it means on the real counts."""
    owners, points = {}, [2]  # a class drawn from its covariance needs 2
    head = (cfg.get('model', None) or {}).get('head', None)
    hooks = [
        h for h in cfg.get('custom_hooks', None) or []
        if _is_type(h, 'GLAGDistillHook')
    ]  # fmt: skip
    for owner in ([head] if _is_type(head, 'AFGHead') else []) + hooks:
        keys = []
        default = 100 if owner is head else None
        threshold = owner.get('tail_threshold', default)
        if threshold is not None:
            tail_classes(torch.ones(1), threshold)  # the real run's check
            if isinstance(threshold, float) and 0 < threshold < 1:
                real = threshold * max(counts)
                owner['tail_threshold'] = int(-(-real // 1))  # ceil
            else:
                owner['tail_threshold'] = threshold
            points.append(owner['tail_threshold'])
            keys.append('tail_threshold')
        if owner.get('n_max', None) is not None:
            points.append(int(owner['n_max']) + 1)
            keys.append('n_max')
        owners[id(owner)] = (owner, keys)
    return owners, points


def _smoke_train_set(cfg: Config, images: int) -> Optional[int]:
    """The training subset and the count rules in its scale (module
    docstring); returns the number of classes (None: no labels)."""
    loader = cfg.get('train_dataloader', None)
    if not loader or not loader.get('dataset'):
        return None
    dataset_cfg = loader['dataset']
    try:
        labels = dataset_labels(DATASETS.build(deepcopy(dataset_cfg)))
    except TypeError:  # unlabelled: its first images
        loader['dataset'] = dict(
            type='SmokeSubset', dataset=dataset_cfg, num=images
        )
        return None
    num_classes = int(labels.max()) + 1 if labels.size else 0
    head = (cfg.get('model', None) or {}).get('head', None) or {}
    num_classes = max(num_classes, int(head.get('num_classes', 0) or 0))
    counts = [int((labels == c).sum()) for c in range(num_classes)]
    kept = smoke_counts(cfg, counts, images)
    loader['dataset'] = dict(
        type='SmokeSubset', dataset=dataset_cfg, counts=kept
    )
    print_log(
        f'rehearsal: {sum(kept)} of {len(labels)} training images, '
        f'{min(kept)} to {max(kept)} per class'
        + (
            f'; tail_threshold {head["tail_threshold"]} in their scale'
            if _is_type(head, 'AFGHead')
            else ''
        ),
        logger='current',
    )
    return num_classes


def smoke_counts(cfg: Config, counts: List[int], images: int) -> List[int]:
    """Images to keep per class of the real training ``counts``; writes
    the config's count thresholds in the kept counts' scale and the real
    counts into ``LongTailAccuracy`` (in place; module docstring).

    Every check of stage two's settings then decides as on the real set:
    tail or not, n_c < 2, ``n_max`` below max n_c by
    :func:`~glag_tools.smoke.rehearsal_counts`; k donors, because the
    classes above the largest tail class are exactly the non-tail classes
    in both scales, so both runs have a tail class short of donors exactly
    when there are fewer than k non-tail classes.
    """
    owners, points = _count_rules(cfg, counts)
    kept, scale = rehearsal_counts(counts, points, images)
    for owner, keys in owners.values():
        for key in keys:
            owner[key] = scale(owner[key])
    for field in ('val_evaluator', 'test_evaluator'):
        evaluators = cfg.get(field, None)
        if isinstance(evaluators, dict):
            evaluators = [evaluators]
        for metric in evaluators or []:
            if _is_type(metric, 'LongTailAccuracy'):
                metric.setdefault('class_counts', list(counts))
    return kept


def smoke_config(
    cfg: Config,
    images: int = SMOKE_IMAGES,
    iters: int = SMOKE_ITERS,
    size: int = SMOKE_SIZE,
) -> Config:
    """Turn a stage's config into its rehearsal (module docstring), in
    place, after its options are merged."""
    rescale_pipelines(cfg, size)
    classes = _smoke_train_set(cfg, images)
    for field in DATALOADER_FIELDS[1:]:
        loader = cfg.get(field, None)
        if not loader or not loader.get('dataset'):
            continue
        loader['dataset'] = dict(
            type='SmokeSubset',
            dataset=loader['dataset'],
            num=classes or images,
            per_class=True,
            min_per_class=1,
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
        train_cfg['val_begin'] = 1
        if isinstance(hooks.get('checkpoint'), dict):
            hooks['checkpoint']['interval'] = interval
    if isinstance(hooks.get('logger'), dict):
        hooks['logger']['interval'] = 1
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
        apply to each stage's config after its options (``finalize`` of
        :func:`~glag_tools.stages.run_config`; None without ``--smoke``).
        Per-stage options are added to ``cfg.stages``.
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
        smoke_config,
    )


def set_threads(threads: Optional[int]) -> None:
    """``--threads N``: torch's intra-op CPU threads (None: unchanged)."""
    if threads is None:
        return
    if threads < 1:
        raise ValueError(f'--threads must be >= 1, got {threads}')
    torch.set_num_threads(int(threads))
