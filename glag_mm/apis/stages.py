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
``cfg.stage_one_checkpoint``, substituted for every
``'{stage_one_checkpoint}'`` in its config. With ``resume``, finished
stages are skipped and the interrupted one resumes from its latest
checkpoint. A stage entry may carry ``cfg_options=dict(...)``, merged into
its config before the command line's.
"""

import json
import os
import os.path as osp
import uuid
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from mmengine.config import Config
from mmengine.dist import barrier, is_main_process
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from .config import ConfigError, default_work_dir, prepare_train_config

__all__ = [
    'STAGE_DONE_FILE',
    'Stage',
    'is_multi_stage',
    'load_stages',
    'select_stage',
    'stage_work_dir',
    'read_stage_done',
    'build_runner',
    'final_checkpoint',
    'train_config',
    'run_stages',
]

STAGE_DONE_FILE = 'stage_done.json'


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
    return osp.join(work_dir, stage.name)


def read_stage_done(stage_dir: str) -> Optional[dict]:
    """The marker of a finished stage, or None if it has not finished."""
    path = osp.join(stage_dir, STAGE_DONE_FILE)
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def build_runner(cfg: Config) -> Runner:
    """A Runner from a prepared config, as mmpretrain's tools build it."""
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)


def final_checkpoint(runner: Runner) -> str:
    """Path of the last checkpoint the run saved (saved now if none was)."""
    path = runner.message_hub.get_info('last_ckpt')
    if path is None:
        record = osp.join(runner.work_dir, 'last_checkpoint')
        if osp.isfile(record):
            with open(record) as f:
                path = f.read().strip() or None
    if path is None:
        filename = 'final.pth'
        runner.save_checkpoint(runner.work_dir, filename)
        barrier()
        path = osp.join(runner.work_dir, filename)
    return path


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


def _write_stage_done(stage: Stage, runner: Runner) -> dict:
    record = dict(
        stage=stage.name,
        config=stage.config,
        checkpoint=final_checkpoint(runner),
        best_checkpoint=runner.message_hub.get_info('best_ckpt'),
        epoch=runner.epoch,
        iter=runner.iter,
    )
    if is_main_process():
        path = osp.join(runner.work_dir, STAGE_DONE_FILE)
        with open(path + '.tmp', 'w') as f:
            json.dump(record, f, indent=2)
        os.replace(path + '.tmp', path)
    barrier()
    return record


def run_stages(
    config_path: str,
    cfg: Optional[Config] = None,
    *,
    work_dir: Optional[str] = None,
    stage: Optional[str] = None,
    resume: Optional[str] = None,
    cfg_options: Optional[dict] = None,
    configure: Optional[Callable[[Config], None]] = None,
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
        **flags: the other arguments of :func:`prepare_train_config`
            (launcher, amp, auto_scale_lr, no_validate, pin_memory,
            persistent_workers).

    Returns:
        stage name -> last checkpoint, for every stage that is finished.
    """
    cfg = Config.fromfile(config_path) if cfg is None else cfg
    stages = load_stages(cfg, config_path)
    work_dir = work_dir or cfg.get('work_dir', None)
    work_dir = work_dir or default_work_dir(config_path)
    selected = stages if stage is None else [select_stage(stages, stage)]
    checkpoints: Dict[str, str] = {}
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
        if resume not in (None, 'auto'):
            resume = 'auto'
        if is_main_process() and osp.isfile(
            osp.join(stage_dir, STAGE_DONE_FILE)
        ):
            os.remove(osp.join(stage_dir, STAGE_DONE_FILE))
        runner = train_config(stage_cfg, name=s.name)
        checkpoints[s.name] = _write_stage_done(s, runner)['checkpoint']
        del runner
    return checkpoints
