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
from typing import Any, Optional

import torch
from mmengine.config import Config, ConfigDict
from mmengine.runner import find_latest_checkpoint

from glag_mm.safe_load import CheckpointError

from .finished import latest_readable_checkpoint
from .launch import set_cpu_model_wrapper

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

STAGE_ONE_PLACEHOLDER = '{stage_one_checkpoint}'


class ConfigError(ValueError):
    """A config or a flag the tools cannot run; the message says the fix."""


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


def _hook_type_name(hook: Any) -> str:
    kind = hook.get('type', '') if isinstance(hook, dict) else type(hook)
    name = kind if isinstance(kind, str) else getattr(kind, '__name__', '')
    return name.split('.')[-1]


def add_default_hook(cfg: Config, kind: str) -> None:
    """Append ``dict(type=kind)`` to ``custom_hooks`` unless it has one."""
    hooks = list(cfg.get('custom_hooks', None) or [])
    if not any(_hook_type_name(h) == kind for h in hooks):
        hooks.append(dict(type=kind))
    cfg.custom_hooks = hooks


def add_class_counts_hook(cfg: Config) -> None:
    """Append ``dict(type='ClassCountsHook')`` unless the config has one."""
    add_default_hook(cfg, 'ClassCountsHook')


def _latest_readable(work_dir: str) -> Optional[str]:
    try:
        return latest_readable_checkpoint(work_dir)
    except CheckpointError as error:
        raise ConfigError(str(error)) from error


def validation_options(node: Any) -> set:
    """The options of the LongTailAccuracy metrics of an evaluator (dict,
    list or ``metrics=``) that are chosen on validation (``'val'``):
    ``posthoc_tau``, ``tau_norm``, ``temperature``."""
    if isinstance(node, (list, tuple)):
        return set().union(*[validation_options(n) for n in node])
    if not isinstance(node, dict):
        return set()
    if _hook_type_name(node) == 'LongTailAccuracy':
        options = ('posthoc_tau', 'tau_norm', 'temperature')
        return {k for k in options if node.get(k) == 'val'}
    return validation_options(node.get('metrics'))


def uses_validation_tau(node: Any) -> bool:
    """Whether an evaluator (dict, list or ``metrics=``) has a
    LongTailAccuracy that PosthocTauHook serves: an option chosen on
    validation (:func:`validation_options`) or ``tau_norm`` at all (it
    needs the head's weight norms)."""
    if isinstance(node, (list, tuple)):
        return any(uses_validation_tau(n) for n in node)
    if not isinstance(node, dict):
        return False
    if _hook_type_name(node) == 'LongTailAccuracy':
        return node.get('tau_norm') is not None or bool(
            validation_options(node)
        )
    return uses_validation_tau(node.get('metrics'))


def add_posthoc_tau_hook(cfg: Config) -> None:
    """Append ``PosthocTauHook`` where an evaluator has posthoc_tau='val';
    there mmengine's epoch loop becomes ``ValidateBeforeSaveLoop``, so that
    each epoch's checkpoint holds what its own validation chose."""
    evaluators = [cfg.get(k) for k in ('val_evaluator', 'test_evaluator')]
    if uses_validation_tau(evaluators):
        add_default_hook(cfg, 'PosthocTauHook')
        loop = cfg.get('train_cfg', None)
        if isinstance(loop, dict) and (
            loop.get('by_epoch') or loop.get('type') == 'EpochBasedTrainLoop'
        ):
            loop = {k: v for k, v in loop.items() if k != 'by_epoch'}
            cfg.train_cfg = dict(loop, type='ValidateBeforeSaveLoop')


def _find(node: Any, text: str, key: str = '') -> Optional[str]:
    """Dotted key of the first string under ``node`` holding ``text``."""
    if isinstance(node, str):
        return key if text in node else None
    if isinstance(node, (list, tuple)):
        node = dict(enumerate(node))
    for sub, value in node.items() if isinstance(node, dict) else ():
        found = _find(value, text, f'{key}.{sub}'.lstrip('.'))
        if found is not None:
            return found
    return None


def _substitute(node: Any, text: str, value: str) -> Any:
    if isinstance(node, str):
        return node.replace(text, value)
    if isinstance(node, dict):
        for key in list(node.keys()):
            node[key] = _substitute(node[key], text, value)
        return node
    if isinstance(node, list):
        return [_substitute(v, text, value) for v in node]
    if isinstance(node, tuple):
        return tuple(_substitute(v, text, value) for v in node)
    return node


def _placeholder_key(cfg: Config) -> Optional[str]:
    """Dotted key of the first ``'{stage_one_checkpoint}'`` in the config."""
    rest = {k: cfg[k] for k in cfg.keys() if k != 'stage_one_checkpoint'}
    return _find(rest, STAGE_ONE_PLACEHOLDER)


def uses_stage_one_checkpoint(cfg: Config) -> bool:
    """Whether any string of the config holds ``'{stage_one_checkpoint}'``."""
    return _placeholder_key(cfg) is not None


def resolve_stage_one_checkpoint(
    cfg: Config, fallback: Optional[str] = None, owner: str = 'this config'
) -> Config:
    """Hand a stage-two config the stage-one checkpoint.

    The path is ``cfg.stage_one_checkpoint`` when set (e.g. with
    ``--cfg-options stage_one_checkpoint=PATH``), else ``fallback`` (the
    two-stage driver passes the checkpoint of the stage named in
    ``init_from``), for a config that has the key (the stage-two bases set
    it to None). It is stored in ``cfg.stage_one_checkpoint``, which
    :class:`~glag_mm.engine.StageOneCheckpointHook` hands to the parts that
    read it when the run starts (the same key under mmpretrain's tools).
    Configs written for earlier versions may still hold the string
    ``'{stage_one_checkpoint}'``; it is replaced by the path. A config that
    has neither is returned unchanged.

    Raises:
        ConfigError: the config uses the placeholder and no path is known,
            or the path does not name a file.
    """
    path = cfg.get('stage_one_checkpoint', None)
    if path in (None, '', STAGE_ONE_PLACEHOLDER):
        if 'stage_one_checkpoint' not in cfg and not uses_stage_one_checkpoint(
            cfg
        ):
            return cfg
        path = fallback
    if path is None and not uses_stage_one_checkpoint(cfg):
        return cfg  # the parts that read it at run time say what to set
    if path is None:
        raise ConfigError(
            f'{owner} needs the stage-one checkpoint (it uses '
            f"'{STAGE_ONE_PLACEHOLDER}' at {_placeholder_key(cfg)}): pass "
            '--cfg-options stage_one_checkpoint=PATH, or train it through a '
            'two-stage config whose stage sets init_from; if nothing should '
            'read that key (a variable inherited from a stage-two base), set '
            'it to None in the config.'
        )
    path = str(path)
    if not osp.isfile(path):
        raise ConfigError(
            f'stage-one checkpoint {path!r} (stage_one_checkpoint, needed by '
            f'{owner}) does not exist; pass an existing file with '
            '--cfg-options stage_one_checkpoint=PATH or train stage one '
            'first.'
        )
    cfg.stage_one_checkpoint = path
    add_default_hook(cfg, 'StageOneCheckpointHook')  # publishes it
    for key in list(cfg.keys()):
        cfg[key] = _substitute(cfg[key], STAGE_ONE_PLACEHOLDER, path)
    return cfg


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
