"""Metrics files of finished runs and the results tables built from them.

One JSON file per (run, seed), ``results/<spec>/runs/<run>_seed<k>.json``;
its existence is what marks the run as done. Keys (accuracies in percent,
test split, final checkpoint; NaN is written as null):

    spec, run, label, group, seed, config, cfg_options,
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

The table (``table.md`` and ``table.csv``) has one row per run of the spec,
in spec order and grouped by ``group``; columns top-1 / many / medium / few
as mean +- sample standard deviation over the seeds found (n given), the
seeds, the epochs and the total wall time (train + test, all seeds). A run
without a metrics file keeps its row ("not run"). Where a run has a
``baseline``, every column whose mean is not above the baseline's mean
carries a dagger and a footnote names the baseline.
"""

import csv
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
    'write_tables',
    'format_seconds',
    'RELIABILITY',
    'reliability_table',
    'pooled_reliability',
    'confidence_spearman',
    'write_confidence_table',
]

COLUMNS = ('top1', 'many', 'medium', 'few')
TAU_KEY = 'lt/posthoc_tau_selected'
HEADERS = {'top1': 'top-1', 'many': 'many', 'medium': 'medium', 'few': 'few'}
MARK = '\u2020'  # dagger
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


def _cell(row: RunSummary, col: str, posthoc: bool = False) -> str:
    mean, std, n = (row.posthoc if posthoc else row.stats)[col]
    if mean is None:
        return 'n/a' if row.records else ''
    text = f'{mean:.2f}' if std is None else f'{mean:.2f} \u00b1 {std:.2f}'
    if col in row.not_above and not posthoc:
        text += f' {MARK}'
    return text


def posthoc_label(row: RunSummary) -> str:
    taus = ', '.join(f'{t:g}' for t in row.taus)
    return f'{row.run.label} + post-hoc \u03c4 (val-selected: {taus})'


def _thresholds(rows: List[RunSummary]):
    found = {
        (r.get('many_threshold', 100), r.get('few_threshold', 20))
        for row in rows
        for r in row.records
    }
    many, few = found.pop() if len(found) == 1 else (100, 20)
    return f'{many:g}', f'{few:g}'


def _markdown(spec: ExperimentSpec, rows: List[RunSummary]) -> str:
    labels = {row.run.name: row.run.label for row in rows}
    lines = [f'# {spec.title}', '']
    if spec.description:
        lines += [spec.description.strip(), '']
    many, few = _thresholds(rows)
    lines += [
        'Test split, final checkpoint, accuracy in percent: mean \u00b1 '
        'sample standard deviation over n seeds (no \u00b1 when n = 1). '
        f'Many / medium / few: classes with > {many}, {few}-{many}, < {few} '
        'training images (n/a: no such class). Wall time: training plus '
        'testing of '
        'all seeds (process start-up included; a stage-two run excludes its '
        f'stage one). {MARK}: not above the baseline named in the notes.',
        '',
        f'Regenerate: `python tools/make_report.py results/{spec.name}`; '
        f'rerun: `python tools/run_experiments.py {spec.path or "SPEC"}`.',
    ]
    groups: List[str] = []
    for row in rows:
        if row.run.group not in groups:
            groups.append(row.run.group)
    head = (
        '| method | top-1 | many | medium | few | n | seeds | epochs '
        '| wall time |'
    )
    notes: List[str] = []
    for group in groups:
        lines += ['']
        if group:
            lines += [f'## {group}', '']
        lines += [head, '|' + '---|' * 9]
        for row in rows:
            if row.run.group != group:
                continue
            if not row.records:
                cells = ['not run'] + [''] * 3
            else:
                cells = [_cell(row, col) for col in COLUMNS]
            seeds = ', '.join(str(s) for s in row.seeds)
            lines.append(
                f'| {row.run.label} | '
                + ' | '.join(cells)
                + f' | {len(row.records)} | {seeds} | {row.epochs} | '
                f'{format_seconds(row.wall_seconds)} |'
            )
            if row.posthoc:
                cells = [_cell(row, col, posthoc=True) for col in COLUMNS]
                lines.append(
                    f'| {posthoc_label(row)} | '
                    + ' | '.join(cells)
                    + f' | {len(row.records)} | {seeds} | {row.epochs} | |'
                )
            for col, bases in row.not_above.items():
                names = ', '.join(labels[b] for b in bases)
                notes.append(
                    f'{MARK} {row.run.label}, {HEADERS[col]}: not above '
                    f'{names}.'
                )
            missing = [
                b for b in row.run.baseline if not rows_by(rows, b).records
            ]
            if missing and row.records:
                notes.append(
                    f'{row.run.label}: baseline '
                    f'{", ".join(labels[b] for b in missing)} not run yet.'
                )
            if row.run.note:
                notes.append(f'{row.run.label}: {row.run.note}')
    if notes:
        lines += ['', 'Notes:', ''] + [f'- {n}' for n in notes]
    total = sum(row.wall_seconds for row in rows)
    lines += [
        '',
        f'Total wall time of the runs above: {format_seconds(total) or "0"}.',
        '',
    ]
    return '\n'.join(lines)


def rows_by(rows: List[RunSummary], name: str) -> RunSummary:
    return next(row for row in rows if row.run.name == name)


def _csv_stats(stats: Dict[str, tuple]) -> Dict[str, str]:
    """The ``<col>_mean`` / ``<col>_std`` cells of one table row."""
    out = {}
    for col in COLUMNS:
        mean, std, n = stats[col]
        out[f'{col}_mean'] = '' if mean is None else f'{mean:.4f}'
        out[f'{col}_std'] = '' if std is None else f'{std:.4f}'
    return out


def _csv_rows(rows: List[RunSummary]) -> List[dict]:
    out = []
    for row in rows:
        item = dict(
            group=row.run.group,
            run=row.run.name,
            label=row.run.label,
            config=row.run.config,
            stage_one_from=row.run.stage_one_from or '',
            n=len(row.records),
            seeds=' '.join(str(s) for s in row.seeds),
            epochs=row.epochs,
        )
        item.update(_csv_stats(row.stats))
        item['wall_seconds'] = f'{row.wall_seconds:.1f}'
        item['baseline'] = ' '.join(row.run.baseline)
        item['not_above_baseline'] = ' '.join(
            f'{col}:{"+".join(bases)}' for col, bases in row.not_above.items()
        )
        out.append(item)
        if row.posthoc:
            extra = dict(item, run=f'{row.run.name}+posthoc_tau')
            extra['label'] = posthoc_label(row)
            extra.update(_csv_stats(row.posthoc))
            extra.update(wall_seconds='', not_above_baseline='')
            out.append(extra)
    return out


def write_tables(spec: ExperimentSpec, results_dir: str) -> List[RunSummary]:
    """Write ``table.md`` and ``table.csv`` from the metrics files."""
    rows = summarise(spec, load_records(results_dir))
    os.makedirs(results_dir, exist_ok=True)
    with open(osp.join(results_dir, 'table.md'), 'w') as f:
        f.write(_markdown(spec, rows))
    items = _csv_rows(rows)
    with open(osp.join(results_dir, 'table.csv'), 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(items[0]))
        writer.writeheader()
        writer.writerows(items)
    return rows


# ------------------------------------------------- confidence behaviour
def confidence_spearman(record: dict) -> Optional[float]:
    """Spearman's rank correlation between the training count and the
    final s_c over the tail classes of one AFG run (the classes with a
    score); None with fewer than three such classes or no spread.

    The paper (section 5.3.2) reports rarer tail classes ending with higher
    s_c, i.e. a negative correlation.
    """
    scores = record.get('final_confidence')
    if not scores:
        return None
    pairs = pd.DataFrame(
        {'count': record['class_counts'], 'score': scores}, dtype=float
    ).dropna()
    if len(pairs) < 3 or pairs['score'].nunique() < 2:
        return None
    return float(pairs['count'].corr(pairs['score'], method='spearman'))


def write_confidence_table(
    spec: ExperimentSpec,
    records: Dict[str, List[dict]],
    path: str,
    names: Optional[Sequence[str]] = None,
) -> Optional[str]:
    """``confidence.md``: per AFG run, the Spearman correlation between a
    tail class's training count and its final s_c, per seed and as mean
    +- std over seeds, and the mean final s_c of each tail class; nothing
    is written where no record holds final scores. ``names``: only these
    runs (e.g. those whose head generates, so that s_c is used)."""
    lines = []
    for run in spec.runs:
        if names is not None and run.name not in names:
            continue
        found = [
            r for r in records.get(run.name, []) if r.get('final_confidence')
        ]
        if not found:
            continue
        found.sort(key=lambda r: r['seed'])
        rho = [confidence_spearman(r) for r in found]
        mean, std, n = mean_std(rho)
        scores = pd.DataFrame([r['final_confidence'] for r in found])
        tail = [c for c in scores if scores[c].notna().any()]
        counts = found[0]['class_counts']
        per_class = ', '.join(
            f'{counts[c]}: {scores[c].mean():.2f}' for c in tail
        )
        summary = 'n/a' if mean is None else f'{mean:+.2f}'
        if std is not None:
            summary += f' ± {std:.2f}'
        each = ', '.join('n/a' if v is None else f'{v:+.2f}' for v in rho)
        seeds = ', '.join(str(r['seed']) for r in found)
        lines.append(
            f'| {run.label} | {summary} | {each} | {seeds} | {per_class} |'
        )
    if not lines:
        return None
    head = [
        f'# {spec.title}: adaptive confidence at the end of stage two',
        '',
        "Spearman's rank correlation between a tail class's training count "
        'and its final confidence score s_c (AFGHead, after the last '
        'update), per seed and mean ± sample std over seeds; negative: '
        'rarer classes end more confident (the paper, section 5.3.2). '
        'Last column: training count: mean final s_c over the seeds.',
        '',
        '| run | Spearman (mean ± std) | per seed | seeds | '
        'count: final s_c |',
        '|---|---|---|---|---|',
    ]
    with open(path, 'w') as f:
        f.write('\n'.join(head + lines) + '\n')
    return path
