"""Train and test the runs of an experiment spec that are not done yet.

    python tools/run_experiments.py experiments/cifar10lt_if100.py
        [--seeds 0 1 2] [--only NAME ...] [--dry-run] [--max-hours H]
        [--skip-missing] [--commit]

For each (run, seed) of the spec without a metrics file, trains it with
tools/train.py in a subprocess (work_dir
``work_dirs/experiments/<spec>/<run>/seed<k>``, logs there), tests the final
checkpoint with tools/test.py on the test split, and writes
``results/<spec>/runs/<run>_seed<k>.json``; then rewrites
``results/<spec>/table.md`` and ``table.csv``. An interrupted sweep resumes:
finished runs are skipped, an interrupted training resumes from its last
checkpoint. ``--dry-run`` prints the plan and the commands.
See ``tools/glag_tools/experiments`` for the spec and file formats.
"""

import argparse
import os.path as osp
import subprocess
import sys
import time

from glag_tools.experiments import (
    Context,
    SpecError,
    describe_plan,
    load_spec,
    plan_jobs,
    run_experiment,
    write_json,
    write_tables,
)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def repo_relative(path: str) -> str:
    """``path`` relative to the repository when inside it (for records)."""
    rel = osp.relpath(osp.abspath(path), REPO)
    return osp.abspath(path) if rel.startswith('..') else rel


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train and test the runs of an experiment spec that are '
        'not done yet; write the metrics files and the results table'
    )
    parser.add_argument('spec', help='experiment spec, experiments/<name>.py')
    parser.add_argument(
        '--seeds',
        type=int,
        nargs='+',
        help="seeds for this call, replacing every selected run's own",
    )
    parser.add_argument(
        '--only',
        nargs='+',
        metavar='NAME',
        help='runs to do (the stage-one runs they need are added)',
    )
    parser.add_argument(
        '--dry-run',
        action='store_true',
        help='print what would run, run nothing',
    )
    parser.add_argument(
        '--max-hours',
        type=float,
        help='start no new run after this many hours (a running one ends)',
    )
    parser.add_argument(
        '--skip-missing',
        action='store_true',
        help='skip runs whose config does not exist instead of stopping',
    )
    parser.add_argument(
        '--commit',
        action='store_true',
        help="git-commit each finished run's metrics file and the tables",
    )
    parser.add_argument('--results-dir', help='default: results/<spec name>')
    parser.add_argument(
        '--work-root', help='default: work_dirs/experiments/<spec name>'
    )
    return parser.parse_args(argv)


def shown(path: str) -> str:
    """A path relative to the working directory when inside it."""
    rel = osp.relpath(path)
    return path if rel.startswith('..') else rel


def git_commit(paths, message: str) -> None:
    """Commit exactly these paths (waits out another process's index lock)."""
    rel = [osp.relpath(p, REPO) for p in paths if osp.exists(p)]
    for _ in range(10):
        add = subprocess.run(['git', 'add', '--', *rel], cwd=REPO)
        commit = subprocess.run(
            ['git', 'commit', '-q', '-m', message, '--', *rel], cwd=REPO
        )
        if add.returncode == 0 and commit.returncode == 0:
            return
        if not osp.exists(osp.join(REPO, '.git', 'index.lock')):
            break
        time.sleep(3)
    print(f'warning: could not commit {rel}', file=sys.stderr)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        spec = load_spec(args.spec)
        spec.path = repo_relative(args.spec)
        ctx = Context(
            root=REPO,
            results_dir=args.results_dir
            or osp.join(REPO, 'results', spec.name),
            work_root=args.work_root
            or osp.join(REPO, 'work_dirs', 'experiments', spec.name),
        )
        if args.dry_run:
            jobs = plan_jobs(spec, ctx, args.only, args.seeds)
            print(f'{spec.name}: {len(jobs)} (run, seed) jobs')
            print(describe_plan(jobs, ctx))
            return 0

        def commit(job, files):
            record = f'{job.run.name} seed {job.seed}'
            git_commit(files, f'results: {spec.name} {record}')

        outcome = run_experiment(
            spec,
            ctx,
            only=args.only,
            seeds=args.seeds,
            max_hours=args.max_hours,
            skip_missing=args.skip_missing,
            after_job=commit if args.commit else None,
        )
    except SpecError as error:
        sys.exit(f'error: {error}')
    write_json(osp.join(ctx.results_dir, 'spec.json'), spec.to_dict())
    write_tables(spec, ctx.results_dir)
    print(
        f'{spec.name}: {len(outcome["finished"])} finished, '
        f'{len(outcome["failed"])} failed, {len(outcome["skipped"])} '
        f'skipped; table: {shown(osp.join(ctx.results_dir, "table.md"))}'
    )
    for job in outcome['failed'] + outcome['skipped']:
        print(f'  {job.title}: {job.error}')
    return 1 if outcome['failed'] else 0


if __name__ == '__main__':
    sys.exit(main())
