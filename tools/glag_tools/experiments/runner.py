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
   (see :mod:`.records`) and rewrite ``table.md`` / ``table.csv``
   (:mod:`.tables`).

A (run, seed) whose metrics file exists is done and never rerun; delete
the file (and its work_dir) to redo it (the statuses: :mod:`.plan`; the
metrics file: :mod:`.recording`).
"""

import os
import os.path as osp
import subprocess
import time
from datetime import datetime, timezone
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .plan import (
    TEST_METRICS,
    TRAIN_DONE,
    Context,
    ExperimentError,
    Job,
    has_checkpoint,
    plan_jobs,
    shown,
    test_command,
    train_command,
)
from .recording import make_record, training_class_counts, working_dir
from .records import read_json, write_json
from .spec import ExperimentSpec, SpecError
from .tables import write_tables

__all__ = ['run_job', 'run_experiment', 'final_checkpoint']

ATTEMPTS = 'train_attempts.json'


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


def _call(cmd: List[str], log: str, ctx: Context) -> Tuple[int, float]:
    env = dict(os.environ, PYTHONUNBUFFERED='1', **ctx.env)
    start = time.perf_counter()
    with open(log, 'a') as f:
        f.write(f'\n$ {shown(cmd, ctx)}\n')
        f.flush()
        proc = subprocess.run(
            cmd, cwd=ctx.root, env=env, stdout=f, stderr=subprocess.STDOUT
        )
    return proc.returncode, time.perf_counter() - start


def final_checkpoint(job: Job, ctx: Context) -> str:
    """The final checkpoint the training left (root-relative if inside)."""
    from ..stages import finished_checkpoint

    with working_dir(ctx.root):
        path = finished_checkpoint(job.work_dir, job.run.config)
    if path is None:
        raise ExperimentError(
            f'{job.title}: training left no final checkpoint in '
            f'{job.work_dir} (no stage_done.json there or in its last '
            'stage)'
        )
    return ctx.rel(path)


def _train(job: Job, ctx: Context, stage_one: Optional[str]) -> dict:
    done_file = osp.join(job.work_dir, TRAIN_DONE)
    if osp.isfile(done_file):
        done = read_json(done_file)
        # a work_dir trained with other options is never reused silently
        recorded = done.get('command', '').replace(' --resume', '')
        wanted = shown(train_command(job, ctx, stage_one, False), ctx)
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
    cmd = train_command(job, ctx, stage_one, has_checkpoint(job.work_dir))
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
        command=shown(cmd, ctx),
    )
    write_json(done_file, done)
    return done


def run_job(job: Job, ctx: Context, spec_name: str) -> dict:
    """Train (unless trained or ``test_only``), test, write the metrics
    file; return it."""
    stage_one = _stage_one_checkpoint(job, ctx)
    if job.run.test_only:  # the stage-one run's checkpoint, no training
        os.makedirs(job.work_dir, exist_ok=True)
        train = dict(checkpoint=stage_one, seconds=0.0, attempts=0)
        stage_one = None
    else:
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
        commands=dict(train=train.get('command'), test=shown(cmd, ctx)),
        spec_name=spec_name,
    )
    write_json(job.metrics_file, record)
    return record


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
