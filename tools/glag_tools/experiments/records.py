"""Metrics files of finished runs, and their summaries per run.

One JSON file per (run, seed), ``results/<spec>/runs/<run>_seed<k>.json``;
its existence is what marks the run as done. Keys (accuracies in percent,
test split, final checkpoint; NaN is written as null):

    spec, run, label, group, seed, config, cfg_options, test_options,
    stage_one_from, stage_one_seed, stage_one_checkpoint,
    top1, many, medium, few,            # LongTailAccuracy's lt/* values
    metrics,                            # every scalar the test returned,
                                        # and lt/reliability (below)
    per_class_accuracy,                 # list of C floats (null: no sample)
    class_counts,                       # training images per class
    many_threshold, few_threshold,      # the groups' thresholds
    epochs, iters,                      # from the config as trained
    train_seconds, test_seconds,        # wall time of the subprocesses
    train_attempts,                     # >1: the run was resumed
    checkpoint, work_dir,
    final_confidence,                   # AFGHead's s_c after its last
                                        # update (null: not a tail class;
                                        # absent or null: not an AFG run)
    git_commit, git_dirty, date, environment, command

``metrics['lt/reliability']`` is LongTailAccuracy's reliability table of
the test predictions (``count``, ``confidence``, ``accuracy`` per bin,
percent, null for an empty bin; ``ece``), present where the test reported
one (runs recorded before it was kept have none).
:func:`pooled_reliability` merges the tables of several seeds.

:func:`summarise` turns the records of a spec into one
:class:`RunSummary` per run (mean +- sample std over the seeds found);
:mod:`.tables` writes the tables from them.
"""

import glob
import json
import math
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

from .spec import ExperimentSpec, RunSpec

__all__ = [
    'COLUMNS',
    'metrics_path',
    'write_json',
    'read_json',
    'load_records',
    'RunSummary',
    'summarise',
    'mean_std',
    'format_seconds',
    'RELIABILITY',
    'reliability_table',
    'pooled_reliability',
]

COLUMNS = ('top1', 'many', 'medium', 'few')
TAU_KEY = 'lt/posthoc_tau_selected'
RELIABILITY = 'lt/reliability'


def metrics_path(results_dir: str, run: str, seed: int) -> str:
    return osp.join(results_dir, 'runs', f'{run}_seed{seed}.json')


def _clean(value: Any) -> Any:
    """NaN / inf -> None, recursively (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_json(path: str, data: Any) -> None:
    """Write strict JSON atomically (a crash never leaves half a file)."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    tmp = f'{path}.tmp'
    with open(tmp, 'w') as f:
        json.dump(_clean(data), f, indent=1, allow_nan=False)
        f.write('\n')
    os.replace(tmp, path)


def read_json(path: str) -> Any:
    with open(path) as f:
        return json.load(f)


def load_records(results_dir: str) -> Dict[str, List[dict]]:
    """run name -> its metrics records, sorted by seed."""
    records: Dict[str, List[dict]] = {}
    pattern = osp.join(results_dir, 'runs', '*_seed*.json')
    for path in sorted(glob.glob(pattern)):
        record = read_json(path)
        records.setdefault(record['run'], []).append(record)
    for runs in records.values():
        runs.sort(key=lambda r: r['seed'])
    return records


def reliability_table(record: dict) -> Optional[dict]:
    """The reliability table in a metrics record, None where it has none."""
    table = (record.get('metrics') or {}).get(RELIABILITY)
    return table if isinstance(table, dict) and table.get('count') else None


def pooled_reliability(tables: Sequence[dict]) -> dict:
    """One reliability table over the predictions of several tables.

    Per bin b, the counts add up and the mean confidence and accuracy are
    the count-weighted means over the tables, so the result is the table of
    all their predictions taken together (e.g. the test set once per seed);
    its ``ece`` is recomputed from the pooled bins,
    ECE = sum_b n_b / N * |acc_b - conf_b| [Guo et al. 2017, eq. 3]. One
    table is returned as it is.
    """
    if not tables:
        raise ValueError('pooled_reliability: no table given')
    sizes = {len(t['count']) for t in tables}
    if len(sizes) != 1:
        raise ValueError(
            f'reliability tables with {sorted(sizes)} bins cannot be pooled; '
            "test every seed with the same LongTailAccuracy 'ece_bins'"
        )
    if len(tables) == 1:
        return dict(tables[0])
    bins = sizes.pop()
    count, confidence, accuracy = [], [], []
    gap_sum = 0.0
    for b in range(bins):
        filled = [t for t in tables if t['count'][b]]
        n = sum(t['count'][b] for t in filled)
        count.append(n)
        if not n:
            confidence.append(None)
            accuracy.append(None)
            continue
        conf = sum(t['count'][b] * t['confidence'][b] for t in filled) / n
        acc = sum(t['count'][b] * t['accuracy'][b] for t in filled) / n
        confidence.append(conf)
        accuracy.append(acc)
        gap_sum += n * abs(acc - conf)
    total = sum(count)
    return dict(
        count=count,
        confidence=confidence,
        accuracy=accuracy,
        ece=gap_sum / total if total else None,
    )


def mean_std(values: Sequence[Optional[float]]):
    """(mean, sample std, n) over the finite values; std None for n < 2."""
    xs = pd.Series([np.nan if v is None else v for v in values], dtype=float)
    xs = xs[np.isfinite(xs)]
    n = len(xs)
    if n == 0:
        return None, None, 0
    std = float(xs.std(ddof=1)) if n > 1 else None
    return float(xs.mean()), std, n


@dataclass
class RunSummary:
    """A row of the table: one run aggregated over its seeds."""

    run: RunSpec
    records: List[dict]
    stats: Dict[str, tuple] = field(default_factory=dict)
    not_above: Dict[str, List[str]] = field(default_factory=dict)
    # with a val-selected post-hoc tau on test (test_options): the
    # ``*_posthoc`` accuracies and each seed's tau
    posthoc: Dict[str, tuple] = field(default_factory=dict)
    taus: List[float] = field(default_factory=list)

    @property
    def seeds(self) -> List[int]:
        return [r['seed'] for r in self.records]

    @property
    def wall_seconds(self) -> float:
        return sum(
            (r.get('train_seconds') or 0) + (r.get('test_seconds') or 0)
            for r in self.records
        )

    @property
    def epochs(self) -> str:
        values = {
            json.dumps(r.get('epochs'), sort_keys=True) for r in (self.records)
        }
        if not values:
            return _epochs_text(self.run.epochs)
        return ' / '.join(_epochs_text(json.loads(v)) for v in sorted(values))


def _epochs_text(epochs: Any) -> str:
    if epochs is None:
        return ''
    if isinstance(epochs, dict):
        return ' + '.join(f'{v} ({k})' for k, v in epochs.items())
    return str(epochs)


def summarise(
    spec: ExperimentSpec, records: Dict[str, List[dict]]
) -> List[RunSummary]:
    """Aggregate every run of the spec (runs without records included)."""
    rows = []
    for run in spec.runs:
        found = records.get(run.name, [])
        row = RunSummary(run, found)
        for col in COLUMNS:
            row.stats[col] = mean_std([r.get(col) for r in found])
        scalars = [r.get('metrics') or {} for r in found]
        if found and all(TAU_KEY in m for m in scalars):
            row.taus = [m[TAU_KEY] for m in scalars]
            for col in COLUMNS:
                key = f'lt/{col}_posthoc'
                row.posthoc[col] = mean_std([m.get(key) for m in scalars])
        rows.append(row)
    by_name = {row.run.name: row for row in rows}
    for row in rows:
        for base in row.run.baseline:
            for col in COLUMNS:
                mine, theirs = row.stats[col][0], by_name[base].stats[col][0]
                if mine is None or theirs is None:
                    continue
                if not mine > theirs:
                    row.not_above.setdefault(col, []).append(base)
    return rows


def format_seconds(seconds: float) -> str:
    if not seconds:
        return ''
    minutes = seconds / 60
    if minutes < 60:
        return f'{minutes:.1f} min'
    return f'{minutes / 60:.2f} h'
