"""Train and test the runs of an experiment spec that are not done yet.

For every (run, seed) of the selected runs, in seed-major order (all runs
of the first seed, then the next seed), with a run's ``stage_one_from``
dependency scheduled before it:

1. train with ``tools/train.py`` in a subprocess, in
   ``<work_root>/<spec>/<run>/seed<k>``, with ``--cfg-options
   randomness.seed=<k>`` plus the run's ``cfg_options`` (and
   ``stage_one_checkpoint=<final checkpoint of the stage-one run>``);
   ``--resume`` is added when the work_dir already holds a checkpoint, so an
   interrupted run continues (a two-stage config skips its finished
   stages). Output goes to ``train.log`` in the work_dir; success writes
   ``train_done.json`` there (checkpoint, wall time of every attempt);
2. test the final checkpoint with ``tools/test.py ... --out
   test_metrics.json --out-item metrics`` (``test.log``), on the config's
   test split, with the run's ``test_options`` added;
3. write the metrics file ``<results>/<spec>/runs/<run>_seed<k>.json``
   (see :mod:`.records`) and rewrite ``table.md`` / ``table.csv``.

A (run, seed) whose metrics file exists is done and never rerun; delete
the file (and its work_dir) to redo it. A metrics file tested with other
``test_options`` than the spec's is out of date: the run is tested again
(trained first only where its work_dir no longer holds the training).
"""

import contextlib
import glob
import importlib.metadata
import json
import os
import os.path as osp
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .records import (
    RELIABILITY,
    metrics_path,
    read_json,
    write_json,
    write_tables,
)
from .spec import ExperimentSpec, RunSpec, SpecError, format_cfg_options

# glag_tools, the library beside the scripts in tools/
_TOOLS = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'tools'
)
if _TOOLS not in sys.path:
    sys.path.append(_TOOLS)

__all__ = [
    'ExperimentError',
    'Job',
    'Context',
    'ConfigInfo',
    'config_info',
    'plan_jobs',
    'run_job',
    'run_experiment',
    'describe_plan',
]

TRAIN_DONE = 'train_done.json'
ATTEMPTS = 'train_attempts.json'
TEST_METRICS = 'test_metrics.json'
GROUP_KEYS = ('top1', 'many', 'medium', 'few')


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

    from glag_tools import is_multi_stage, load_stages

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


def _has_checkpoint(work_dir: str) -> bool:
    from glag_tools import STAGE_DONE_FILE

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
    if osp.isfile(osp.join(job.work_dir, TRAIN_DONE)):
        return 'trained'
    if _has_checkpoint(job.work_dir):
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


# --------------------------------------------------------------- commands
def _stage_one_checkpoint(job: Job, ctx: Context) -> Optional[str]:
    if job.depends_on is None:
        return None
    done = osp.join(job.depends_on.work_dir, TRAIN_DONE)
    if not osp.isfile(done):
        raise ExperimentError(
            f'{job.title} needs the checkpoint of '
            f'{job.depends_on.title}, which has no {TRAIN_DONE} in '
            f'{job.depends_on.work_dir} (its work_dir is not here: train it '
            f'again by deleting {job.depends_on.metrics_file})'
        )
    checkpoint = read_json(done)['checkpoint']
    path = ctx.path(checkpoint)
    if not osp.isfile(path):
        raise ExperimentError(
            f'{job.title}: the stage-one checkpoint {checkpoint} is gone'
        )
    return checkpoint


def _options(
    job: Job, stage_one: Optional[str], test: bool = False
) -> List[str]:
    options = {'randomness.seed': job.seed, **job.run.cfg_options}
    if test:
        options.update(job.run.test_options)
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
    return cmd + _options(job, stage_one)


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
        *_options(job, stage_one, test=True),
    ]


def _shown(cmd: Sequence[str], ctx: Context) -> str:
    return shlex.join(['python' if c == ctx.python else c for c in cmd])


def _call(cmd: List[str], log: str, ctx: Context) -> Tuple[int, float]:
    env = dict(os.environ, PYTHONUNBUFFERED='1', **ctx.env)
    start = time.perf_counter()
    with open(log, 'a') as f:
        f.write(f'\n$ {_shown(cmd, ctx)}\n')
        f.flush()
        proc = subprocess.run(
            cmd, cwd=ctx.root, env=env, stdout=f, stderr=subprocess.STDOUT
        )
    return proc.returncode, time.perf_counter() - start


def final_checkpoint(job: Job, ctx: Context) -> str:
    """The final checkpoint the training left (root-relative if inside)."""
    from glag_tools import finished_checkpoint

    with _cwd(ctx.root):
        path = finished_checkpoint(job.work_dir, job.run.config)
    if path is None:
        raise ExperimentError(
            f'{job.title}: training left no final checkpoint in '
            f'{job.work_dir} (no stage_done.json there or in its last '
            'stage)'
        )
    return ctx.rel(path)


# --------------------------------------------------------------- records
_COUNTS_CACHE: Dict[str, List[int]] = {}


@contextlib.contextmanager
def _cwd(path: str):
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def training_class_counts(job: Job, ctx: Context) -> List[int]:
    """The training class counts the test's metric used.

    As :class:`~glag_mm.engine.ClassCountsHook` finds them in a test-only
    run: its explicit ``class_counts``, else the training dataset of the
    tested config, counted.
    """
    cfg = job.info.test_cfg
    for hook in cfg.get('custom_hooks', None) or []:
        if str(hook.get('type', '')).endswith('ClassCountsHook') and (
            hook.get('class_counts') is not None
        ):
            return [int(c) for c in hook['class_counts']]
    key = repr(cfg.train_dataloader.dataset)
    if key not in _COUNTS_CACHE:
        from mmpretrain.registry import DATASETS

        import glag_mm  # noqa: F401  (registers the datasets)
        from glag_mm.engine import count_dataset_labels

        with _cwd(ctx.root):
            dataset = DATASETS.build(cfg.train_dataloader.dataset)
        _COUNTS_CACHE[key] = count_dataset_labels(dataset)
    return list(_COUNTS_CACHE[key])


def _git(ctx: Context, *args: str) -> Optional[str]:
    try:
        out = subprocess.run(
            ['git', *args],
            cwd=ctx.root,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _version(package: str) -> Optional[str]:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment() -> dict:
    return dict(
        python=platform.python_version(),
        torch=_version('torch'),
        mmengine=_version('mmengine'),
        mmpretrain=_version('mmpretrain'),
        cpu_count=os.cpu_count(),
        omp_num_threads=os.environ.get('OMP_NUM_THREADS'),
    )


def _number(value: Any) -> Optional[float]:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _reliability(table: Any) -> Optional[dict]:
    """LongTailAccuracy's reliability table as plain JSON, else None.

    Kept as ``count`` (ints), ``confidence`` and ``accuracy`` (percent, None
    for an empty bin) and ``ece``; anything else (no table: ``ece_bins=0``,
    ``reliability=False``, a model without ``pred_score``) gives None.
    """
    if not isinstance(table, dict) or 'count' not in table:
        return None
    return dict(
        count=[int(c) for c in table['count']],
        confidence=[_number(v) for v in table['confidence']],
        accuracy=[_number(v) for v in table['accuracy']],
        ece=_number(table.get('ece')),
    )


def make_record(
    job: Job,
    ctx: Context,
    metrics: dict,
    *,
    class_counts: List[int],
    checkpoint: str,
    stage_one: Optional[str],
    train: dict,
    test_seconds: float,
    commands: Dict[str, str],
    spec_name: str,
) -> dict:
    """The metrics file's content (see :mod:`.records`)."""
    if 'lt/top1' not in metrics:
        raise ExperimentError(
            f'{job.title}: the test metrics have no lt/top1 (keys: '
            f"{sorted(metrics)}); the config's test_evaluator must include "
            "dict(type='LongTailAccuracy')"
        )
    per_class = metrics.get('lt/per_class')
    if per_class is None:
        raise ExperimentError(
            f'{job.title}: the test metrics have no lt/per_class; keep '
            'LongTailAccuracy(per_class=True) in the test_evaluator'
        )
    if len(per_class) != len(class_counts):
        raise ExperimentError(
            f'{job.title}: {len(per_class)} per-class accuracies but '
            f'{len(class_counts)} training class counts'
        )
    scalars = {
        k: _number(v)
        for k, v in metrics.items()
        if not isinstance(v, (list, tuple, dict))
    }
    reliability = _reliability(metrics.get(RELIABILITY))
    if reliability is not None:
        scalars[RELIABILITY] = reliability
    commit = _git(ctx, 'rev-parse', 'HEAD')
    dirty = _git(ctx, 'status', '--porcelain', '--untracked-files=no')
    return dict(
        spec=spec_name,
        run=job.run.name,
        label=job.run.label,
        group=job.run.group,
        seed=job.seed,
        config=job.run.config,
        cfg_options=job.run.cfg_options,
        test_options=job.run.test_options,
        stage_one_from=job.run.stage_one_from,
        stage_one_seed=(
            None if job.depends_on is None else job.depends_on.seed
        ),
        stage_one_checkpoint=stage_one,
        **{k: _number(metrics.get(f'lt/{k}')) for k in GROUP_KEYS},
        metrics=scalars,
        per_class_accuracy=[_number(v) for v in per_class],
        class_counts=[int(c) for c in class_counts],
        many_threshold=job.info.many_threshold,
        few_threshold=job.info.few_threshold,
        epochs=job.info.epochs,
        iters=job.info.iters,
        train_seconds=round(train['seconds'], 1),
        test_seconds=round(test_seconds, 1),
        train_attempts=train['attempts'],
        checkpoint=checkpoint,
        work_dir=ctx.rel(job.work_dir),
        final_confidence=final_confidence(job.work_dir),
        git_commit=commit,
        git_dirty=None if dirty is None else bool(dirty),
        date=datetime.now(timezone.utc).isoformat(timespec='seconds'),
        environment=environment(),
        command=commands,
    )


def final_confidence(work_dir: str) -> Optional[List[Optional[float]]]:
    """An AFGHead run's s_c after its last update (null for classes it
    never scores), from the scalars AFGHook logged; None for other runs."""
    from .plots import confidence_history  # matplotlib only where needed

    history = confidence_history(work_dir)
    if not history:
        return None
    return [_number(v) for v in history[-1][1]]


# --------------------------------------------------------------- running
def _train(job: Job, ctx: Context, stage_one: Optional[str]) -> dict:
    done_file = osp.join(job.work_dir, TRAIN_DONE)
    if osp.isfile(done_file):
        done = read_json(done_file)
        # a work_dir trained with other options is never reused silently
        recorded = done.get('command', '').replace(' --resume', '')
        wanted = _shown(train_command(job, ctx, stage_one, False), ctx)
        if recorded and recorded != wanted:
            raise ExperimentError(
                f'{job.title}: {job.work_dir} was trained by `{recorded}`, '
                f'but the spec now asks for `{wanted}`; move that work_dir '
                'away (or delete it) to train the run again'
            )
        return done
    os.makedirs(job.work_dir, exist_ok=True)
    attempts_file = osp.join(job.work_dir, ATTEMPTS)
    attempts = read_json(attempts_file) if osp.isfile(attempts_file) else []
    cmd = train_command(job, ctx, stage_one, _has_checkpoint(job.work_dir))
    log = osp.join(job.work_dir, 'train.log')
    started = datetime.now(timezone.utc).isoformat(timespec='seconds')
    start = time.perf_counter()
    code = 'interrupted'
    try:
        code, _ = _call(cmd, log, ctx)
    finally:  # an interrupted attempt's time counts too
        seconds = round(time.perf_counter() - start, 1)
        attempts.append(dict(date=started, seconds=seconds, code=code))
        write_json(attempts_file, attempts)
    if code != 0:
        raise ExperimentError(
            f'{job.title}: training failed (exit {code}); see {log}'
        )
    done = dict(
        checkpoint=final_checkpoint(job, ctx),
        seconds=sum(a['seconds'] for a in attempts),
        attempts=len(attempts),
        command=_shown(cmd, ctx),
    )
    write_json(done_file, done)
    return done


def run_job(job: Job, ctx: Context, spec_name: str) -> dict:
    """Train (unless trained), test, write the metrics file; return it."""
    stage_one = _stage_one_checkpoint(job, ctx)
    train = _train(job, ctx, stage_one)
    checkpoint = train['checkpoint']
    out = osp.join(job.work_dir, TEST_METRICS)
    if osp.isfile(out):
        os.remove(out)
    cmd = test_command(job, ctx, checkpoint, stage_one)
    log = osp.join(job.work_dir, 'test.log')
    code, test_seconds = _call(cmd, log, ctx)
    if code != 0 or not osp.isfile(out):
        raise ExperimentError(
            f'{job.title}: testing failed (exit {code}); see {log}'
        )
    metrics = read_json(out)
    record = make_record(
        job,
        ctx,
        metrics,
        class_counts=training_class_counts(job, ctx),
        checkpoint=checkpoint,
        stage_one=stage_one,
        train=train,
        test_seconds=test_seconds,
        commands=dict(train=train.get('command'), test=_shown(cmd, ctx)),
        spec_name=spec_name,
    )
    write_json(job.metrics_file, record)
    return record


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
            lines.append(f'    {_shown(cmd, ctx)}')
    return '\n'.join(lines)


def run_experiment(
    spec: ExperimentSpec,
    ctx: Context,
    only: Optional[Sequence[str]] = None,
    seeds: Optional[Sequence[int]] = None,
    max_hours: Optional[float] = None,
    skip_missing: bool = False,
    after_job: Optional[Callable[[Job, List[str]], None]] = None,
    log: Callable[[str], None] = print,
) -> Dict[str, List[Job]]:
    """Run every job of the plan that is not done; rewrite the tables.

    A failed job does not stop the others; the jobs that need it are
    skipped. ``after_job(job, written_files)`` runs after each finished
    job (e.g. to commit its metrics file).

    Returns:
        {'finished': [...], 'failed': [...], 'skipped': [...]}: jobs run
        now, jobs that failed (``job.error`` says why), jobs not started
        (blocked by a failure, a missing config or the time budget).
    """
    jobs = plan_jobs(spec, ctx, only, seeds)
    missing = sorted(
        {j.run.config for j in jobs if j.status == 'missing config'}
    )
    if missing and not skip_missing:
        raise SpecError(
            f'spec {spec.name!r}: these configs do not exist: {missing}; '
            'select other runs with --only or pass --skip-missing'
        )
    os.makedirs(ctx.results_dir, exist_ok=True)
    write_json(osp.join(ctx.results_dir, 'spec.json'), spec.to_dict())
    write_tables(spec, ctx.results_dir)
    start = time.perf_counter()
    outcome: Dict[str, List[Job]] = dict(finished=[], failed=[], skipped=[])
    todo = [j for j in jobs if j.status != 'done']
    for i, job in enumerate(todo, 1):
        prefix = f'[{i}/{len(todo)}] {spec.name}: {job.title}'
        blocked = job.depends_on is not None and (
            job.depends_on in outcome['failed']
            or job.depends_on in outcome['skipped']
        )
        if job.status == 'missing config' or blocked:
            job.error = 'missing config' if not blocked else 'blocked'
            outcome['skipped'].append(job)
            log(f'{prefix}: skipped ({job.error})')
            continue
        hours = (time.perf_counter() - start) / 3600
        if max_hours is not None and hours >= max_hours:
            job.error = 'time budget used up'
            outcome['skipped'].append(job)
            log(f'{prefix}: not started (--max-hours {max_hours} used up)')
            continue
        log(f'{prefix}: {job.status}; logs in {ctx.rel(job.work_dir)}')
        try:
            record = run_job(job, ctx, spec.name)
        except ExperimentError as error:
            job.error = str(error)
            outcome['failed'].append(job)
            log(f'{prefix}: FAILED: {error}')
            continue
        job.status = 'done'
        outcome['finished'].append(job)
        write_tables(spec, ctx.results_dir)
        log(
            f'{prefix}: top-1 {record["top1"]:.2f} (train '
            f'{record["train_seconds"] / 60:.1f} min, test '
            f'{record["test_seconds"]:.0f} s)'
        )
        if after_job is not None:
            after_job(
                job,
                [
                    job.metrics_file,
                    osp.join(ctx.results_dir, 'table.md'),
                    osp.join(ctx.results_dir, 'table.csv'),
                    osp.join(ctx.results_dir, 'spec.json'),
                ],
            )
    return outcome
