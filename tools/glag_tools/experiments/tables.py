"""The results tables of a spec, and its confidence table.

The table (``table.md`` and ``table.csv``) has one row per run of the spec,
in spec order and grouped by ``group``; columns top-1 / many / medium / few
as mean +- sample standard deviation over the seeds found (n given), the
seeds, the epochs and the total wall time (train + test, all seeds). A run
without a metrics file keeps its row ("not run"). Where a run has a
``baseline``, every column whose mean is not above the baseline's mean
carries a dagger and a footnote names the baseline. A run tested with a
val-selected post-hoc tau gets a second row, "<label> + post-hoc tau".

:func:`write_confidence_table` writes ``confidence.md``: per AFG run the
Spearman correlation between a tail class's training count and its final
s_c, over the seeds.
"""

import csv
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import pandas as pd

from .records import (
    COLUMNS,
    RunSummary,
    format_seconds,
    load_records,
    mean_std,
    summarise,
)
from .spec import ExperimentSpec

__all__ = ['write_tables', 'confidence_spearman', 'write_confidence_table']

HEADERS = {'top1': 'top-1', 'many': 'many', 'medium': 'medium', 'few': 'few'}
MARK = '\u2020'  # dagger


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
