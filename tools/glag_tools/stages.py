"""Run the stages of a two-stage config, one Runner each.

A top-level config names its stages; each is an ordinary config that also
trains alone (paths are relative to the top-level config)::

    stages = [
        dict(name='stage1', config='graloss/graloss_r32_cifar100lt_if100.py'),
        dict(name='stage2', config='glag/afg_r32_cifar100lt_if100.py',
             init_from='stage1'),
    ]
    work_dir = './work_dirs/glag_r32_cifar100lt_if100'   # optional

:func:`run_stages` trains them in order in ``work_dir/<name>``. A stage is
finished when its work_dir holds ``stage_done.json`` (written after
``runner.train()`` returns, with the path of its last checkpoint). A stage
with ``init_from`` gets that stage's last checkpoint as
``cfg.stage_one_checkpoint`` (the one key every stage-two part reads at
run time). With ``resume``, finished
stages are skipped and the interrupted one resumes from its latest
checkpoint. A stage entry may carry ``cfg_options=dict(...)``, merged into
its config before the command line's.

:func:`run_config` is the one entry point of the tools (``tools/train.py``,
the demo, the experiment runner through ``tools/train.py``): a top-level
config goes through :func:`run_stages`, a plain config trains in its
work_dir as mmpretrain's tool would, and both leave ``stage_done.json``
where they finish. :func:`finished_checkpoint` reads the final checkpoint
of a finished run back from its work_dir; :func:`final_checkpoint` is the
one rule for what that checkpoint is.
"""

import os.path as osp
import uuid
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from .config import ConfigError, default_work_dir, prepare_train_config
from .finished import (
    STAGE_DONE_FILE,
    clear_stage_done,
    read_stage_done,
    recorded_checkpoint,
    write_stage_done,
)

__all__ = [
    'Stage',
    'is_multi_stage',
    'load_stages',
    'select_stage',
    'stage_work_dir',
    'build_runner',
    'train_config',
    'run_stages',
    'run_config',
    'FinishedRun',
    'finished_checkpoint',
]


@dataclass
class Stage:
    """One stage of a multi-stage config.

    Args:
        name: the stage's name, also its sub-directory of the work_dir.
        config: absolute path of the stage's config file.
        init_from: name of an earlier stage whose last checkpoint this stage
            receives as ``stage_one_checkpoint``.
        cfg_options: options merged into the stage's config.
    """

    name: str
    config: str
    init_from: Optional[str] = None
    cfg_options: Dict = field(default_factory=dict)


def is_multi_stage(cfg: Config) -> bool:
    """Whether a config is a top-level config naming ``stages``."""
    return cfg.get('stages', None) is not None


def load_stages(cfg: Config, config_path: str) -> List[Stage]:
    """Validate ``cfg.stages`` and return them with absolute config paths."""
    entries = cfg.get('stages', None)
    if not isinstance(entries, (list, tuple)) or not entries:
        raise ConfigError(
            f'{config_path}: stages must be a non-empty list of '
            'dict(name=..., config=..., init_from=...).'
        )
    root = osp.dirname(osp.abspath(config_path))
    stages: List[Stage] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not {'name', 'config'} <= set(entry):
            raise ConfigError(
                f'{config_path}: stages[{i}] must be a dict with at least '
                f"'name' and 'config', got {entry!r}."
            )
        unknown = set(entry) - {'name', 'config', 'init_from', 'cfg_options'}
        if unknown:
            raise ConfigError(
                f'{config_path}: stages[{i}] has unknown keys '
                f'{sorted(unknown)}; allowed: name, config, init_from, '
                'cfg_options.'
            )
        name = str(entry['name'])
        if not name or osp.basename(name) != name or name in ('.', '..'):
            raise ConfigError(
                f'{config_path}: stage name {name!r} must be a plain '
                'directory name (it is the sub-directory of the work_dir).'
            )
        if any(s.name == name for s in stages):
            raise ConfigError(f'{config_path}: stage name {name!r} repeats.')
        path = osp.normpath(osp.join(root, entry['config']))
        if not osp.isfile(path):
            raise ConfigError(
                f'{config_path}: the config of stage {name!r} ({path}) does '
                'not exist; paths are relative to the top-level config.'
            )
        init_from = entry.get('init_from', None)
        if init_from is not None and not any(
            s.name == init_from for s in stages
        ):
            raise ConfigError(
                f'{config_path}: stage {name!r} has init_from={init_from!r}, '
                f'which is not an earlier stage '
                f'({[s.name for s in stages]}).'
            )
        stages.append(
            Stage(name, path, init_from, dict(entry.get('cfg_options') or {}))
        )
    return stages


def select_stage(stages: List[Stage], name: str) -> Stage:
    """The stage called ``name`` (a clear error lists the others)."""
    for stage in stages:
        if stage.name == name:
            return stage
    raise ConfigError(
        f'unknown stage {name!r}; this config has {[s.name for s in stages]}.'
    )


def stage_work_dir(work_dir: str, stage: Stage) -> str:
    """``work_dir/<name>``; the work_dir itself for a plain config."""
    return osp.join(work_dir, stage.name) if stage.name else work_dir


def build_runner(cfg: Config) -> Runner:
    """A Runner from a prepared config, as mmpretrain's tools build it."""
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)


def train_config(cfg: Config, name: Optional[str] = None) -> Runner:
    """Build a Runner from a prepared config, train it, return the Runner.

    Several runs in one process need distinct experiment names (mmengine
    keys its logger and visualizer instances by them), so one is made up
    from ``name`` where the config sets none.
    """
    if name is not None and cfg.get('experiment_name', None) is None:
        stem = osp.splitext(osp.basename(cfg.filename or 'config'))[0]
        cfg.experiment_name = f'{name}_{stem}_{uuid.uuid4().hex[:6]}'
    runner = build_runner(cfg)
    runner.train()
    return runner


def run_stages(
    config_path: str,
    cfg: Optional[Config] = None,
    *,
    work_dir: Optional[str] = None,
    stage: Optional[str] = None,
    resume: Optional[str] = None,
    cfg_options: Optional[dict] = None,
    configure: Optional[Callable[[Config], None]] = None,
    finalize: Optional[Callable[[Config], None]] = None,
    **flags,
) -> Dict[str, str]:
    """Train the stages of a top-level config; return their checkpoints.

    Args:
        config_path: the top-level config file.
        cfg: the loaded top-level config (loaded here if None).
        work_dir: ``--work-dir``; else the config's ``work_dir``; else
            ``./work_dirs/<config name>``. Stage ``s`` runs in
            ``work_dir/s``.
        stage: ``--stage``: run only this stage.
        resume: ``--resume``: None, ``'auto'`` or a checkpoint path (the
            path applies to the first stage that runs). Finished stages are
            skipped; the others resume from their latest checkpoint.
        cfg_options: ``--cfg-options``, merged into every stage's config.
        configure: called with each stage's freshly loaded config, before
            the options are merged (e.g. to point datasets at a data root).
        finalize: called with each stage's config once every option and
            flag is in (e.g. ``--smoke``'s rehearsal).
        **flags: the other arguments of :func:`prepare_train_config`
            (launcher, amp, auto_scale_lr, no_validate, pin_memory,
            persistent_workers).

    Returns:
        stage name -> last checkpoint, for every stage that is finished.
    """
    return _run_stages(
        config_path,
        cfg,
        work_dir=work_dir,
        stage=stage,
        resume=resume,
        cfg_options=cfg_options,
        configure=configure,
        finalize=finalize,
        **flags,
    )[0]


def _run_stages(
    config_path: str,
    cfg: Optional[Config],
    *,
    work_dir: Optional[str] = None,
    stage: Optional[str] = None,
    resume: Optional[str] = None,
    cfg_options: Optional[dict] = None,
    configure: Optional[Callable[[Config], None]] = None,
    finalize: Optional[Callable[[Config], None]] = None,
    **flags,
) -> Tuple[Dict[str, str], Optional[Runner]]:
    """:func:`run_stages`, also returning the Runner of the last stage run."""
    cfg = Config.fromfile(config_path) if cfg is None else cfg
    stages = load_stages(cfg, config_path)
    work_dir = work_dir or cfg.get('work_dir', None)
    work_dir = work_dir or default_work_dir(config_path)
    selected = stages if stage is None else [select_stage(stages, stage)]
    checkpoints: Dict[str, str] = {}
    last: Optional[Runner] = None
    for s in stages:
        done = read_stage_done(stage_work_dir(work_dir, s))
        if done is not None:
            checkpoints[s.name] = done['checkpoint']
    for s in selected:
        stage_dir = stage_work_dir(work_dir, s)
        if resume is not None and read_stage_done(stage_dir) is not None:
            print(f'stage {s.name!r} finished earlier ({stage_dir}); skipped')
            continue
        given = (cfg_options or {}).get('stage_one_checkpoint')
        fallback = checkpoints.get(s.init_from) if s.init_from else None
        if s.init_from and given is None and fallback is None:
            raise ConfigError(
                f'stage {s.name!r} starts from stage {s.init_from!r}, which '
                f'has not finished in {work_dir} (no '
                f'{osp.join(s.init_from, STAGE_DONE_FILE)}); run that stage '
                'first, or pass --cfg-options stage_one_checkpoint=PATH.'
            )
        stage_cfg = Config.fromfile(s.config)
        if configure is not None:
            configure(stage_cfg)
        if s.cfg_options:
            stage_cfg.merge_from_dict(s.cfg_options)
        prepare_train_config(
            stage_cfg,
            config_path=s.config,
            work_dir=stage_dir,
            resume=resume,
            cfg_options=cfg_options,
            stage_one_checkpoint=fallback,
            **flags,
        )
        if finalize is not None:
            finalize(stage_cfg)
        if resume not in (None, 'auto'):
            resume = 'auto'
        clear_stage_done(stage_dir)
        last = None  # the previous stage's Runner is freed before this one
        last = train_config(stage_cfg, name=s.name)
        checkpoints[s.name] = write_stage_done(s.name, s.config, last)[
            'checkpoint'
        ]
    return checkpoints, last


@dataclass
class FinishedRun:
    """What :func:`run_config` returns.

    Args:
        checkpoint: the final checkpoint of the last stage.
        runner: the Runner that trained it (None where ``resume`` found
            every stage finished and nothing ran).
    """

    checkpoint: str
    runner: Optional[Runner]


def run_config(
    config_path: str,
    cfg: Optional[Config] = None,
    *,
    stage: Optional[str] = None,
    configure: Optional[Callable[[Config], None]] = None,
    finalize: Optional[Callable[[Config], None]] = None,
    name: Optional[str] = None,
    **options,
) -> FinishedRun:
    """Train any config; return its last stage's checkpoint and Runner.

    A top-level config (``stages = [...]``) runs through :func:`run_stages`
    (same arguments). A plain config trains in its work_dir exactly as
    mmpretrain's ``tools/train.py`` would, ``configure`` applied first and
    ``finalize`` last, and
    ``stage_done.json`` is written there when it finishes. ``name`` seeds
    the experiment name of a plain config (see :func:`train_config`).
    ``options``: ``work_dir``, ``resume``, ``cfg_options`` and the flags of
    :func:`prepare_train_config`.
    """
    cfg = Config.fromfile(config_path) if cfg is None else cfg
    if is_multi_stage(cfg):
        checkpoints, runner = _run_stages(
            config_path,
            cfg,
            stage=stage,
            configure=configure,
            finalize=finalize,
            **options,
        )
        names = [s.name for s in load_stages(cfg, config_path)]
        last = stage if stage is not None else names[-1]
        return FinishedRun(checkpoints[last], runner)
    if stage is not None:
        raise ConfigError(
            f'--stage {stage} needs a two-stage config (one with '
            f'stages = [...]); {config_path} has no stages.'
        )
    if configure is not None:
        configure(cfg)
    prepare_train_config(cfg, config_path=config_path, **options)
    if finalize is not None:
        finalize(cfg)
    clear_stage_done(cfg.work_dir)
    runner = train_config(cfg, name=name)
    done = write_stage_done('', config_path, runner)
    return FinishedRun(done['checkpoint'], runner)


def finished_checkpoint(work_dir: str, config_path: str) -> Optional[str]:
    """The final checkpoint a finished :func:`run_config` left, or None.

    Read from the ``stage_done.json`` of the config's last stage (of the
    work_dir itself for a plain config); a work_dir trained before that
    marker existed falls back to mmengine's ``last_checkpoint`` record.
    """
    cfg = Config.fromfile(config_path)
    stage_dir = work_dir
    if is_multi_stage(cfg):
        last = load_stages(cfg, config_path)[-1]
        stage_dir = stage_work_dir(work_dir, last)
    done = read_stage_done(stage_dir)
    if done is not None:
        return done['checkpoint']
    return None if is_multi_stage(cfg) else recorded_checkpoint(stage_dir)
