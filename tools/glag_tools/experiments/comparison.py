"""The second table of ``ablation.md``: the val-selected GLAG row against
the simpler rows.

Rows (:data:`COMPARISON_ROWS`, those with records): GLAG with the settings
chosen on validation (run ``'selected'``; in a spec without it, where the
selection kept the defaults, run ``'defaults'`` is that row), GLAG's
defaults, AFG alone (``'no_kd'``), cRT (``'crt'``), and the stage-one
model with no stage two (``'zero_training'``, a ``test_only`` run) read
twice: with post-hoc logit adjustment and with τ-normalisation, each τ
chosen on validation.

Every row is paired with the val-selected row per seed. A ``test_only``
run has one value per trunk (stage two's seeds do not change it), so its
one seed is paired with every seed of the val-selected row. Columns: the
validation top-1 of the row's own predictions (``pred``, ``pred_posthoc``
or ``pred_tau_norm`` of its samples), its paired-bootstrap difference to
the val-selected row over the images of every paired seed
(:func:`glag_mm.evaluation.bootstrap.paired_bootstrap`, 95 % percentile
interval; ``better`` / ``worse`` where it lies wholly above / below zero),
test top-1 (mean ± sample std over seeds), the per-seed test difference
to the val-selected row (mean ± sample std of the differences), many /
medium, the rarest class and ECE (the last two only for a row's own
predictions: the adjusted scores keep neither).
"""

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .ablation import compare_validation, mean_std_text, rarest_accuracy
from .spec import ExperimentSpec

__all__ = ['COMPARISON_ROWS', 'comparison_rows', 'comparison_lines']

#: (label, run, variant): variant None reads the run's own predictions,
#: 'posthoc' / 'tau_norm' its predictions after that adjustment
COMPARISON_ROWS: Tuple[Tuple[str, str, Optional[str]], ...] = (
    ('GLAG, val-selected', 'selected', None),
    ('GLAG, defaults', 'defaults', None),
    ('AFG alone (no KD)', 'no_kd', None),
    ('cRT, val-selected', 'crt', None),
    ('stage one + post-hoc τ (val)', 'zero_training', 'posthoc'),
    ('stage one + τ-norm (val)', 'zero_training', 'tau_norm'),
)
#: test columns after top-1
COLUMNS = ('many', 'medium', 'rarest class', 'ECE')


def read_variant(record: dict, variant: Optional[str]) -> dict:
    """A record's figures for one prediction variant: ``pred`` (its
    validation labels), ``top1`` and the :data:`COLUMNS` on test."""
    samples = record['validation']['samples']
    metrics = record.get('metrics') or {}
    if variant is None:
        test = dict(
            top1=record['top1'],
            many=record.get('many'),
            medium=record.get('medium'),
            rarest=rarest_accuracy(record),
            ece=metrics.get('lt/ece'),
        )
        return dict(pred=samples['pred'], **test)
    return dict(
        pred=samples[f'pred_{variant}'],
        top1=metrics.get(f'lt/top1_{variant}'),
        many=metrics.get(f'lt/many_{variant}'),
        medium=metrics.get(f'lt/medium_{variant}'),
        rarest=None,
        ece=None,
    )


def _top1(gt: Sequence[int], pred: Sequence[int]) -> float:
    return float(np.mean(np.asarray(gt) == np.asarray(pred)) * 100)


def comparison_rows(
    spec: ExperimentSpec,
    records: Dict[str, List[dict]],
    resamples: int = 1000,
    seed: int = 0,
    selection_ran: bool = True,
) -> List[dict]:
    """The table's rows (fewer than two: none): ``label``, ``run``,
    ``seeds`` (the val-selected row's seeds it is paired with),
    ``own_seeds``, ``validation``, ``test`` and the :data:`COLUMNS` (per
    own seed), ``test_difference`` (per paired seed) and ``comparison``
    (the bootstrap; None for the val-selected row itself)."""
    names = {r.name for r in spec.runs}
    has = {
        name: {
            r['seed']: r for r in records.get(name, []) if r.get('validation')
        }
        for name in names
    }
    first = 'selected' if 'selected' in names else 'defaults'
    if not has.get(first):
        return []
    label = COMPARISON_ROWS[0][0]
    if first == 'defaults':
        label += (
            ' (= defaults: the selection kept them)'
            if selection_ran
            else ': none ran on this trunk, so the defaults stand in'
        )
    rows = [(label, first, None)] + [
        r for r in COMPARISON_ROWS[1:] if has.get(r[1]) and r[1] != first
    ]
    if len(rows) < 2:
        return []
    reference = has[first]
    out = []
    for i, (label, name, variant) in enumerate(rows):
        mine = has[name]
        own = {s: read_variant(r, variant) for s, r in sorted(mine.items())}
        if spec.run(name).test_only:  # one value per trunk: every seed
            (only,) = mine.values()
            mine = {s: only for s in reference}
        seeds = sorted(set(mine) & set(reference))
        read = {s: read_variant(mine[s], variant) for s in seeds}
        ref = {s: read_variant(reference[s], None) for s in seeds}
        comparison = None
        if i > 0:
            comparison = compare_validation(
                [dict(mine[s], seed=s) for s in seeds],
                [reference[s] for s in seeds],
                resamples,
                seed,
                pred=f'pred_{variant}' if variant else 'pred',
            )
        row = dict(
            label=label,
            run=name,
            seeds=seeds,
            own_seeds=list(own),
            validation=[
                _top1(has[name][s]['validation']['samples']['gt'], v['pred'])
                for s, v in own.items()
            ],
            test=[v['top1'] for v in own.values()],
            test_difference=[
                read[s]['top1'] - ref[s]['top1']
                for s in seeds
                if read[s]['top1'] is not None
            ],
            comparison=comparison,
        )
        for column, key in zip(COLUMNS, ('many', 'medium', 'rarest', 'ece')):
            row[column] = [v[key] for v in own.values()]
        out.append(row)
    return out


def comparison_lines(
    spec: ExperimentSpec,
    records: Dict[str, List[dict]],
    resamples: int = 1000,
    seed: int = 0,
    selection_ran: bool = True,
) -> List[str]:
    """The table in markdown (with its heading and note); [] where fewer
    than two of its rows have records. ``selection_ran``: whether a
    selection record exists (else the defaults are not 'val-selected')."""
    rows = comparison_rows(spec, records, resamples, seed, selection_ran)
    if not rows:
        return []
    headers = [
        'row',
        'run (paired seeds)',
        'val top-1',
        'Δ val top-1 vs val-selected [95 % interval]',
        'beyond the noise',
        'test top-1',
        'Δ test top-1 vs val-selected (paired per seed)',
        *COLUMNS,
    ]
    lines = [
        '',
        '## The val-selected GLAG row against the simpler rows',
        '',
        'Each row paired with the val-selected GLAG row per seed of stage '
        'two: validation top-1 and its paired-bootstrap difference '
        f'({resamples} draws, seed {seed}, 95 % percentile interval, over '
        'the validation images of every paired seed), test top-1 (mean ± '
        'sample std over seeds) and the mean ± std of the per-seed test '
        'differences. The zero-training rows (the stage one with post-hoc '
        'τ or τ-norm, τ chosen on validation) have one value per trunk: '
        "stage two's seeds do not change them, so that value is paired "
        'with every seed of the val-selected row. Rarest class and ECE: '
        "'–' for the adjusted predictions (their scores are not kept). "
        'All figures percent.',
        '',
        '| ' + ' | '.join(headers) + ' |',
        '|' + '---|' * len(headers),
    ]
    for row in rows:
        c = row['comparison']
        seeds = ','.join(str(s) for s in row['own_seeds'])
        if row['own_seeds'] != row['seeds']:
            seeds += '; paired with ' + ','.join(map(str, row['seeds']))
        if c is None:
            delta, verdict, diff = 'reference', '–', 'reference'
        else:
            low, high = c['interval']
            delta = f'{c["difference"]:+.2f} [{low:+.2f}, {high:+.2f}]'
            verdict = c['verdict']
            diff = mean_std_text(row['test_difference'], sign=True)
        cells = [
            row['label'],
            f'{row["run"]} ({seeds})',
            mean_std_text(row['validation']),
            delta,
            verdict,
            mean_std_text(row['test']),
            diff,
            *[mean_std_text(row[column]) for column in COLUMNS],
        ]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return lines
