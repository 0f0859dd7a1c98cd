"""``ablation.md``: every row against its reference on validation, with
the noise of the validation images.

A run whose records hold their final validation's per-image labels
(``validation``, :func:`.recording.validation_record`) and whose
``baseline`` names such a run (its first one that has them: the
reference, e.g. the defaults of a one-factor ablation) gets a row: its
validation top-1, the paired-bootstrap difference to the reference on the
same images (:func:`glag_mm.evaluation.bootstrap.paired_bootstrap`; the
images of every seed both runs have, each seed's row paired with the
reference's same seed), whether the 95 % interval lies wholly above zero
(``better``) or below (``worse``) or holds zero (``within``), and beside it
the test figures (mean ± sample std over seeds): top-1 and its paired
difference to the reference, many / medium / few, the rarest class's
accuracy, ECE before and after temperature scaling, and top-1 with the
post-hoc tau chosen on validation, where recorded.
"""

import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np

from glag_mm.evaluation.bootstrap import paired_bootstrap

from .records import mean_std
from .spec import ExperimentSpec

__all__ = [
    'compare_validation',
    'ablation_rows',
    'write_ablation_table',
    'rarest_accuracy',
    'mean_std_text',
    'verdict',
]

RESAMPLES = 1000


def _validated(records: Sequence[dict]) -> Dict[int, dict]:
    return {r['seed']: r for r in records if r.get('validation')}


def compare_validation(
    rows: Sequence[dict],
    reference: Sequence[dict],
    resamples: int = RESAMPLES,
    seed: int = 0,
    pred: str = 'pred',
) -> Optional[dict]:
    """Paired bootstrap of validation top-1, a run's records against the
    reference's, over the validation images of their common seeds
    (None: no common seed with labels). ``pred``: the key of the run's
    predictions in its samples (e.g. ``'pred_posthoc'``; the reference's
    own ``'pred'`` always).

    Returns:
        ``paired_bootstrap``'s dict plus ``seeds`` and ``verdict``
        (``'better'``, ``'worse'`` or ``'within'`` the noise).

    Raises:
        ValueError: a seed's two runs were validated on other labels.
    """
    mine, theirs = _validated(rows), _validated(reference)
    seeds = sorted(set(mine) & set(theirs))
    if not seeds:
        return None
    gt, mine_pred, ref = [], [], []
    for s in seeds:
        a, b = mine[s]['validation'], theirs[s]['validation']
        if a['samples']['gt'] != b['samples']['gt']:
            raise ValueError(
                f'seed {s}: {mine[s]["run"]} and {theirs[s]["run"]} were '
                'validated on other images (their gt labels differ); the '
                'paired comparison needs the same validation split'
            )
        gt += a['samples']['gt']
        mine_pred += a['samples'][pred]
        ref += b['samples']['pred']
    out = paired_bootstrap(gt, mine_pred, ref, 'top1', resamples, seed)
    return dict(out, seeds=seeds, verdict=verdict(out['interval']))


def verdict(interval: Sequence[float]) -> str:
    """'better' / 'worse' where the interval lies wholly above / below
    zero, else 'within' (the noise)."""
    low, high = interval
    return 'better' if low > 0 else 'worse' if high < 0 else 'within'


def rarest_accuracy(record: dict) -> Optional[float]:
    """Test accuracy of the class with the fewest training images."""
    counts = record.get('class_counts') or []
    if not counts:
        return None
    return record['per_class_accuracy'][int(np.argmin(counts))]


def _metric(record: dict, key: str) -> Optional[float]:
    if key == 'rarest':
        return rarest_accuracy(record)
    if key in ('top1', 'many', 'medium', 'few'):
        return record.get(key)
    return (record.get('metrics') or {}).get(key)


#: test columns: (header, how to read it from a record)
TEST_COLUMNS = [
    ('test top-1', 'top1'),
    ('many', 'many'),
    ('medium', 'medium'),
    ('few', 'few'),
    ('rarest class', 'rarest'),
    ('ECE', 'lt/ece'),
    ('ECE after T (val)', 'lt/ece_temperature'),
    ('top-1, post-hoc τ (val)', 'lt/top1_posthoc'),
]


def mean_std_text(
    values: Sequence[Optional[float]], sign: bool = False
) -> str:
    """'mean ± std' (std for two values or more; '–' for none)."""
    mean, std, n = mean_std(values)
    if n == 0:
        return '–'
    text = f'{mean:+.2f}' if sign else f'{mean:.2f}'
    return text if std is None else f'{text} ± {std:.2f}'


def ablation_rows(
    spec: ExperimentSpec,
    records: Dict[str, List[dict]],
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> List[dict]:
    """One dict per run with validation labels: ``run``, ``reference``
    (None for a reference itself), ``validation`` (mean val top-1),
    ``comparison`` (:func:`compare_validation`, None without a reference),
    ``test_difference`` (per-seed test top-1 minus the reference's, over
    their common seeds) and ``test`` (column header -> list per seed)."""
    out = []
    for run in spec.runs:
        mine = _validated(records.get(run.name, []))
        if not mine:
            continue
        reference = next(
            (b for b in run.baseline if _validated(records.get(b, []))),
            None,
        )
        comparison, difference = None, []
        if reference is not None:
            theirs = _validated(records[reference])
            comparison = compare_validation(
                list(mine.values()), list(theirs.values()), resamples, seed
            )
            difference = [
                mine[s]['top1'] - theirs[s]['top1']
                for s in sorted(set(mine) & set(theirs))
            ]
        found = [mine[s] for s in sorted(mine)]
        out.append(
            dict(
                run=run,
                reference=reference,
                seeds=sorted(mine),
                validation=[r['validation']['top1'] for r in found],
                comparison=comparison,
                test_difference=difference,
                test={
                    h: [_metric(r, k) for r in found] for h, k in TEST_COLUMNS
                },
            )
        )
    return out


def _line(row: dict) -> str:
    c = row['comparison']
    if c is None:
        delta, outcome = 'reference', '–'
    else:
        low, high = c['interval']
        seeds = ','.join(str(s) for s in c['seeds'])
        delta = f'{c["difference"]:+.2f} [{low:+.2f}, {high:+.2f}] (s {seeds})'
        outcome = c['verdict']
    tests = [mean_std_text(v) for v in row['test'].values()]
    cells = [
        row['run'].group,
        row['run'].label,
        ', '.join(str(s) for s in row['seeds']),
        mean_std_text(row['validation']),
        delta,
        outcome,
        tests[0],
        mean_std_text(row['test_difference'], sign=True) if c else 'reference',
        *tests[1:],
    ]
    return '| ' + ' | '.join(cells) + ' |'


def write_ablation_table(
    spec: ExperimentSpec,
    records: Dict[str, List[dict]],
    path: str,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Optional[str]:
    """Write ``ablation.md`` (see the module) and, below it, the
    comparison table (:mod:`.comparison`); nothing where no run has
    validation labels. Returns the path written, or None."""
    rows = ablation_rows(spec, records, resamples, seed)
    if not rows:
        return None
    headers = [
        'suspect',
        'row',
        'seeds',
        'val top-1',
        'Δ val top-1 vs reference [95 % interval] (seeds)',
        'beyond the noise',
        'test top-1',
        'Δ test top-1 (paired)',
        *[h for h, _ in TEST_COLUMNS[1:]],
    ]
    first = _validated(records[rows[0]['run'].name])
    images = len(next(iter(first.values()))['validation']['samples']['gt'])
    head = [
        f'# {spec.title}: ablations against the reference, on validation',
        '',
        'Validation top-1 of each row and its difference to the reference '
        f'row (paired bootstrap over the {images} validation images of '
        f'each common seed, {resamples} draws, seed {seed}, 95 % '
        'percentile interval): `better` / `worse` where the whole interval '
        'lies above / below zero, `within` where it holds zero. Decisions '
        'read these columns only. Test columns (the test split; mean ± '
        'sample std over seeds): top-1 and its per-seed difference to the '
        "reference, many / medium / few (few: '–' where no class has fewer "
        'than the few-shot bound), the rarest training class, ECE before '
        'and after temperature scaling (T chosen on validation), top-1 '
        'with post-hoc τ chosen on validation. All figures percent.',
        '',
        '| ' + ' | '.join(headers) + ' |',
        '|' + '---|' * len(headers),
    ]
    from .comparison import comparison_lines  # it builds on this module

    lines = head + [_line(r) for r in rows]
    selection = osp.join(
        osp.dirname(path), 'selection', 'glag_wide', 'selection.json'
    )
    lines += comparison_lines(
        spec, records, resamples, seed, osp.isfile(selection)
    )
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return path
