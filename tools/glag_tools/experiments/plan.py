"""The jobs of an experiment spec: what each (run, seed) still needs.

:func:`plan_jobs` lists the (run, seed) jobs of the selected runs in
seed-major order (all runs of the first seed, then the next seed), a run's
``stage_one_from`` dependency before it, each with its status:

* ``done``: its metrics file exists and was tested with the run's
  ``test_options`` (a file tested with others is out of date: the run is
  tested again, trained first only where its work_dir no longer holds the
  training);
* ``trained``: ``train_done.json`` in its work_dir, only the test is left
  (always so for a ``test_only`` run: it tests its stage-one run's
  checkpoint and never trains);
* ``partial``: a checkpoint in its work_dir, training resumes;
* ``new``; ``missing config``.

:func:`train_command` / :func:`test_command` are the ``tools/train.py`` /
``tools/test.py`` command lines of a job; :func:`describe_plan` shows the
plan (``--dry-run``).
"""

import glob
import json
import os.path as osp
import shlex
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .records import metrics_path, read_json
from .spec import ExperimentSpec, RunSpec, SpecError

__all__ = [
    'ExperimentError',
    'Job',
    'Context',
    'ConfigInfo',
    'config_info',
    'plan_jobs',
    'describe_plan',
    'train_command',
    'test_command',
    'job_options',
    'format_cfg_options',
    'WORK_DIR',
]

TRAIN_DONE = 'train_done.json'
TEST_METRICS = 'test_metrics.json'
#: text of a cfg_options value that becomes the job's work_dir
WORK_DIR = '{work_dir}'


class ExperimentError(RuntimeError):
    """A run that could not be trained or tested (the message says why)."""


@dataclass
class Context:
    """Where things are.

    Args:
        root: the repository root: tools/ lives here, relative config paths
            start here, and subprocesses run here.
        results_dir: ``results/<spec>``.
        work_root: work_dirs of this spec: ``<work_root>/<run>/seed<k>``.
        python: interpreter for the subprocesses.
        env: extra environment variables for the subprocesses.
    """

    root: str
    results_dir: str
    work_root: str
    python: str = sys.executable
    env: Dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root = osp.abspath(self.root)
        self.results_dir = osp.abspath(self.results_dir)
        self.work_root = osp.abspath(self.work_root)

    def path(self, path: str) -> str:
        """A path of a spec or config, absolute (relative: to ``root``)."""
        return path if osp.isabs(path) else osp.join(self.root, path)

    def rel(self, path: Optional[str]) -> Optional[str]:
        """``path`` relative to the root when inside it (for records)."""
        if path is None:
            return None
        full = osp.abspath(osp.join(self.root, path))
        inside = osp.commonpath([full, osp.abspath(self.root)])
        if inside == osp.abspath(self.root):
            return osp.relpath(full, self.root)
        return full


@dataclass
class ConfigInfo:
    """Facts about a run's config after its ``cfg_options``.

    ``epochs`` / ``iters``: the training length (a dict per stage for a
    two-stage config); ``test_config``: the config tools/test.py tests
    (the last stage's); ``last_stage``: its name (None: one stage).
    """

    epochs: Any
    iters: Any
    test_cfg: Any
    last_stage: Optional[str]
    many_threshold: float = 100
    few_threshold: float = 20


@dataclass(eq=False)
class Job:
    """One (run, seed) of a spec and what it still needs."""

    run: RunSpec
    seed: int
    work_dir: str
    metrics_file: str
    depends_on: Optional['Job'] = None
    status: str = 'new'  # done | trained | partial | new | missing config
    info: Optional[ConfigInfo] = None
    error: Optional[str] = None

    @property
    def key(self) -> Tuple[str, int]:
        return self.run.name, self.seed

    @property
    def title(self) -> str:
        return f'{self.run.name} seed {self.seed}'


def _length(cfg) -> Tuple[Any, Any]:
    train_cfg = cfg.get('train_cfg', None) or {}
    return train_cfg.get('max_epochs'), train_cfg.get('max_iters')


def _thresholds(cfg) -> Tuple[float, float]:
    evaluator = cfg.get('test_evaluator', None)
    metrics = (
        evaluator if isinstance(evaluator, (list, tuple)) else [evaluator]
    )
    for metric in metrics:
        if isinstance(metric, dict) and str(metric.get('type', '')).endswith(
            'LongTailAccuracy'
        ):
            return (
                metric.get('many_threshold', 100),
                metric.get('few_threshold', 20),
            )
    return 100, 20


def config_info(config: str, cfg_options: Dict[str, Any]) -> ConfigInfo:
    """Load a run's config (and its stages) with the run's options."""
    from mmengine.config import Config

    from ..stages import is_multi_stage, load_stages

    cfg = Config.fromfile(config)
    options = dict(cfg_options)
    if not is_multi_stage(cfg):
        cfg.merge_from_dict(dict(options))
        epochs, iters = _length(cfg)
        return ConfigInfo(epochs, iters, cfg, None, *_thresholds(cfg))
    epochs, iters, stage_cfg = {}, {}, None
    for stage in load_stages(cfg, config):
        stage_cfg = Config.fromfile(stage.config)
        if stage.cfg_options:
            stage_cfg.merge_from_dict(dict(stage.cfg_options))
        stage_cfg.merge_from_dict(dict(options))
        epochs[stage.name], iters[stage.name] = _length(stage_cfg)
        last = stage.name
    return ConfigInfo(epochs, iters, stage_cfg, last, *_thresholds(stage_cfg))


def _check_epochs(run: RunSpec, info: ConfigInfo) -> None:
    if run.epochs is None:
        return
    if run.epochs != info.epochs:
        raise SpecError(
            f'run {run.name!r} states epochs={run.epochs!r} but its config '
            f'({run.config} with its cfg_options) trains {info.epochs!r}; '
            'change the spec or its cfg_options (e.g. '
            "'train_cfg.max_epochs' and the scheduler's T_max / end)"
        )


def has_checkpoint(work_dir: str) -> bool:
    from ..finished import STAGE_DONE_FILE

    return bool(
        glob.glob(osp.join(work_dir, 'last_checkpoint'))
        or glob.glob(osp.join(work_dir, '*', 'last_checkpoint'))
        or glob.glob(osp.join(work_dir, '*', STAGE_DONE_FILE))
    )


def _tested_as_specified(job: Job) -> bool:
    """Whether the run's metrics file was tested with its test_options
    (records from before test_options existed hold none)."""
    record = read_json(job.metrics_file)
    wanted = json.loads(json.dumps(job.run.test_options))
    return record.get('test_options', {}) == wanted


def _status(job: Job) -> str:
    if osp.isfile(job.metrics_file) and _tested_as_specified(job):
        return 'done'
    if job.run.test_only or osp.isfile(osp.join(job.work_dir, TRAIN_DONE)):
        return 'trained'
    if has_checkpoint(job.work_dir):
        return 'partial'
    return 'new'


def plan_jobs(
    spec: ExperimentSpec,
    ctx: Context,
    only: Optional[Sequence[str]] = None,
    seeds: Optional[Sequence[int]] = None,
) -> List[Job]:
    """The (run, seed) jobs of the selected runs, dependencies first.

    Args:
        only: run names to do (default: all); the stage-one runs they need
            are added.
        seeds: replaces every selected run's seeds for this call.

    Done jobs are included (status ``'done'``) so that the caller can show
    them; :func:`run_experiment` skips them.
    """
    for name in only or []:
        spec.run(name)  # raises a SpecError naming the runs
    selected = [r for r in spec.runs if not only or r.name in only]
    jobs: Dict[Tuple[str, int], Job] = {}
    order: List[Job] = []
    infos: Dict[str, Any] = {}

    def info_of(run: RunSpec):
        if run.name not in infos:
            config = ctx.path(run.config)
            if not osp.isfile(config):
                infos[run.name] = None
            else:
                infos[run.name] = config_info(config, run.cfg_options)
                _check_epochs(run, infos[run.name])
        return infos[run.name]

    def add(run: RunSpec, seed: int) -> Job:
        if (run.name, seed) in jobs:
            return jobs[run.name, seed]
        dep = None
        if run.stage_one_from is not None:
            source = spec.run(run.stage_one_from)
            dep = add(source, run.stage_one_seed_for(seed))
        job = Job(
            run=run,
            seed=seed,
            work_dir=osp.join(ctx.work_root, run.name, f'seed{seed}'),
            metrics_file=metrics_path(ctx.results_dir, run.name, seed),
            depends_on=dep,
        )
        job.info = info_of(run)
        job.status = 'missing config' if job.info is None else _status(job)
        jobs[job.key] = job
        order.append(job)
        return job

    all_seeds = sorted(
        {s for r in selected for s in (seeds if seeds else r.seeds)}
    )
    for seed in all_seeds:
        for run in selected:
            if seed in (seeds if seeds else run.seeds):
                add(run, seed)
    return order


def _format_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        inner = ','.join(_format_value(v) for v in value)
        return f'[{inner}]' if isinstance(value, list) else f'({inner})'
    return str(value)


def format_cfg_options(options: Dict[str, Any]) -> Sequence[str]:
    """``{'a.b': 1, 'c': [1, 2]}`` -> ``['a.b=1', 'c=[1,2]']`` for argv.

    The strings parse back to the same values with mmengine's
    ``DictAction`` (numbers, booleans, None, lists and tuples).
    """
    return [f'{key}={_format_value(value)}' for key, value in options.items()]


def job_options(job: Job, ctx: Context, test: bool = False) -> dict:
    """The run's ``cfg_options`` (plus its ``test_options`` for the test)
    for this job: the seed added, and :data:`WORK_DIR` in a string value
    replaced by the job's work_dir (e.g. ``'val_evaluator.samples_file':
    '{work_dir}/val_samples.json'``: one file per seed)."""
    options = {'randomness.seed': job.seed, **job.run.cfg_options}
    if test:
        options.update(job.run.test_options)
    here = ctx.rel(job.work_dir)
    return {
        k: v.replace(WORK_DIR, here) if isinstance(v, str) else v
        for k, v in options.items()
    }


def _options(
    job: Job, ctx: Context, stage_one: Optional[str], test: bool = False
) -> List[str]:
    options = job_options(job, ctx, test)
    if stage_one is not None:
        options['stage_one_checkpoint'] = stage_one
    return ['--cfg-options', *format_cfg_options(options)]


def train_command(
    job: Job, ctx: Context, stage_one: Optional[str], resume: bool
) -> List[str]:
    cmd = [
        ctx.python,
        osp.join('tools', 'train.py'),
        job.run.config,
        '--work-dir',
        ctx.rel(job.work_dir),
    ]
    if resume:
        cmd.append('--resume')
    return cmd + _options(job, ctx, stage_one)


def test_command(
    job: Job, ctx: Context, checkpoint: str, stage_one: Optional[str]
) -> List[str]:
    return [
        ctx.python,
        osp.join('tools', 'test.py'),
        job.run.config,
        checkpoint,
        '--work-dir',
        ctx.rel(job.work_dir),
        '--out',
        ctx.rel(osp.join(job.work_dir, TEST_METRICS)),
        '--out-item',
        'metrics',
        *_options(job, ctx, stage_one, test=True),
    ]


def shown(cmd: Sequence[str], ctx: Context) -> str:
    return shlex.join(['python' if c == ctx.python else c for c in cmd])


def describe_plan(jobs: List[Job], ctx: Context) -> str:
    """One line per job: status, work_dir, and what would run."""
    lines = []
    for job in jobs:
        what = {
            'done': 'done, skipped',
            'trained': 'trained; test only',
            'partial': 'interrupted; resume training, then test',
            'new': 'train, then test',
            'missing config': f'config {job.run.config} does not exist',
        }[job.status]
        dep = f' (stage one: {job.depends_on.title})' if job.depends_on else ''
        lines.append(f'{job.title:<32} {what}{dep}')
        if job.status in ('new', 'partial'):
            stage_one = None
            if job.depends_on is not None:
                stage_one = ctx.rel(
                    osp.join(job.depends_on.work_dir, '<final checkpoint>')
                )
            cmd = train_command(job, ctx, stage_one, job.status == 'partial')
            lines.append(f'    {shown(cmd, ctx)}')
    return '\n'.join(lines)
