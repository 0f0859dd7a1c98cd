"""What a tested run's metrics file holds (:func:`make_record`).

Its accuracies and per-class accuracy, the training class counts the
test's metric used, the reliability table, the run's final adaptive
confidence (AFG runs), its options, checkpoints, wall times, commands, git
commit and software versions; the file's format is described in
:mod:`.records`.
"""

import contextlib
import importlib.metadata
import os
import os.path as osp
import platform
import subprocess
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

from .plan import Context, ExperimentError, Job, job_options
from .records import RELIABILITY, read_json

__all__ = [
    'make_record',
    'training_class_counts',
    'final_confidence',
    'validation_record',
]

#: the cfg_options key whose file holds the final validation's labels
SAMPLES_OPTION = 'val_evaluator.samples_file'

GROUP_KEYS = ('top1', 'many', 'medium', 'few')


_COUNTS_CACHE: Dict[str, List[int]] = {}


@contextlib.contextmanager
def working_dir(path: str):
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

        with working_dir(ctx.root):
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
        validation=validation_record(job, ctx),
    )


def validation_record(job: Job, ctx: Context) -> Optional[dict]:
    """The final validation's per-image labels, for a run whose
    ``cfg_options`` give ``val_evaluator.samples_file`` (None for others):
    ``gt`` and every ``pred*`` list of LongTailAccuracy's samples file,
    with ``top1`` and ``class_mean`` (percent) of ``pred``, so that a
    report compares runs on the same validation images with a paired
    bootstrap (:mod:`.ablation`).

    Raises:
        ExperimentError: the option is given but the file is missing.
    """
    from glag_mm.evaluation.bootstrap import sample_statistic

    path = job_options(job, ctx).get(SAMPLES_OPTION)
    if path is None:
        return None
    full = ctx.path(path)
    if not osp.isfile(full):
        raise ExperimentError(
            f'{job.title}: {SAMPLES_OPTION} is {path}, but no such file '
            "after the run; the config's val_evaluator must be a "
            'LongTailAccuracy'
        )
    samples = read_json(full)
    labels = {
        k: [int(x) for x in v]
        for k, v in samples.items()
        if k == 'gt' or k.startswith('pred')
    }
    everything = [list(range(len(labels['gt'])))]
    scores = {
        name: float(
            sample_statistic(labels['gt'], labels['pred'], name, everything)[0]
        )
        for name in ('top1', 'class_mean')
    }
    return dict(**scores, samples=labels)


def final_confidence(work_dir: str) -> Optional[List[Optional[float]]]:
    """An AFGHead run's s_c after its last update (null for classes it
    never scores), from the scalars AFGHook logged; None for other runs."""
    from .plots import confidence_history  # matplotlib only where needed

    history = confidence_history(work_dir)
    if not history:
        return None
    return [_number(v) for v in history[-1][1]]
