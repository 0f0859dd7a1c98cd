"""Regenerate every results table and plot from the metrics files.

    python tools/make_report.py [results/<spec> | experiments/<spec>.py ...]

Without arguments: every ``results/<spec>/`` holding a ``spec.json`` (which
tools/run_experiments.py writes). For each spec it rewrites ``table.md`` and
``table.csv`` from ``runs/*.json``; plots the per-class test accuracy
against the training count for each ``compare`` pair of the spec
(``per_class_<a>_vs_<b>.png``); and, for each run whose head is AFGHead, the
confidence scores s_c across stage-two epochs from the ``epoch_<k>.pth``
checkpoints of its work_dir (``confidence_<run>.png``; skipped with a
message where the work_dir or its checkpoints are gone); and a reliability
diagram of the test predictions (``reliability.png``); and, where the
runs recorded AFGHead's final s_c, ``confidence.md``: Spearman's rank
correlation between a tail class's training count and its final s_c per
AFG run (per seed and over seeds): one panel per run
named in the spec's ``compare`` pairs (every run where it has none), drawn
by tools/plot_reliability.py from the runs' recorded ``lt/reliability``
tables with the bins pooled over all seeds found (the table of every
seed's predictions together; its ECE is that of the pooled bins). Runs
recorded without a table are left out; with none, nothing is drawn. Where runs
recorded their final validation's per-image labels (a spec's
``'val_evaluator.samples_file': '{work_dir}/val_samples.json'``),
``ablation.md``: each such run against the first of its ``baseline`` runs
that has them, a paired bootstrap of validation top-1 on the same images
with its 95 % interval, and the test figures beside it
(:mod:`glag_tools.experiments.ablation`). Always writes
``results/plots/schedules.png`` (tau(u) and beta(u) for every shape).
"""

import argparse
import glob
import os.path as osp
import sys

from plot_reliability import plot_reliability

from glag_tools.experiments import (
    Context,
    SpecError,
    load_records,
    load_spec,
    pooled_reliability,
    read_json,
    reliability_table,
    spec_from_dict,
    write_ablation_table,
    write_confidence_table,
    write_json,
    write_tables,
)
from glag_tools.experiments.plan import config_info
from glag_tools.experiments.plots import (
    confidence_history,
    plot_confidence,
    plot_per_class,
    plot_schedules,
)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def repo_relative(path: str) -> str:
    """``path`` relative to the repository when inside it (for records)."""
    rel = osp.relpath(osp.abspath(path), REPO)
    return osp.abspath(path) if rel.startswith('..') else rel


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Regenerate the results tables and plots'
    )
    parser.add_argument(
        'targets',
        nargs='*',
        help='results/<spec> directories or experiments/<spec>.py files '
        '(default: every results/*/spec.json)',
    )
    parser.add_argument(
        '--results-root',
        default=osp.join(REPO, 'results'),
        help='where results/<spec> directories live (default: results/)',
    )
    return parser.parse_args(argv)


def _same_dir(a: str, b: str) -> bool:
    return osp.isdir(a) and osp.isdir(b) and osp.samefile(a, b)


def _targets(args):
    """(spec, results_dir) for every target."""
    targets = args.targets or sorted(
        osp.dirname(p)
        for p in glob.glob(osp.join(args.results_root, '*', 'spec.json'))
    )
    shared_plots = osp.join(args.results_root, 'plots')
    found = []
    for target in targets:
        if target.endswith('.py'):
            spec = load_spec(target)
            spec.path = repo_relative(target)
            results_dir = osp.join(args.results_root, spec.name)
            write_json(osp.join(results_dir, 'spec.json'), spec.to_dict())
            found.append((spec, results_dir))
            continue
        path = osp.join(target, 'spec.json')
        if not osp.isfile(path):
            if _same_dir(target, shared_plots):
                continue  # our own output, which results/*/ matches too
            raise SpecError(
                f'{target} has no spec.json; pass the spec file '
                '(experiments/<name>.py) or run tools/run_experiments.py'
            )
        data = read_json(path)
        name = osp.basename(osp.normpath(target))
        found.append(
            (spec_from_dict(data, name, data.get('path', '')), target)
        )
    return found


def _afg_head(run, ctx):
    """The AFGHead config of a run that generates features, else None.

    Other heads, a missing config, and an AFGHead with generation_ratio=0
    (the Tukey transform alone, whose s_c is never used) give None.
    """
    config = ctx.path(run.config)
    if not osp.isfile(config):
        return None
    head = config_info(config, run.cfg_options).test_cfg.model.get('head')
    if not head or not str(head.get('type', '')).endswith('AFGHead'):
        return None
    if head.get('generation_ratio', 1.0) == 0:
        return None
    return head


def reliability_panels(spec, records: dict, labels: dict) -> dict:
    """Panel name -> pooled reliability table, for the diagram of a spec.

    The runs of the ``compare`` pairs in order (every run of the spec where
    it has no pair); a run whose records hold no table is left out.
    """
    names = [name for pair in spec.compare for name in pair]
    names = list(dict.fromkeys(names or [run.name for run in spec.runs]))
    panels = {}
    for name in names:
        found = [
            (r['seed'], reliability_table(r)) for r in records.get(name, [])
        ]
        found = [(seed, table) for seed, table in found if table]
        if not found:
            continue
        seeds = ', '.join(str(seed) for seed, _ in found)
        plural = 's' if len(found) > 1 else ''
        title = f'{labels[name]} (seed{plural} {seeds})'
        panels[title] = pooled_reliability([table for _, table in found])
    return panels


def report(spec, results_dir: str) -> list:
    """Tables and plots of one spec; returns the files written."""
    ctx = Context(root=REPO, results_dir=results_dir, work_root=REPO)
    rows = write_tables(spec, results_dir)
    written = [osp.join(results_dir, 'table.md')]
    written.append(osp.join(results_dir, 'table.csv'))
    records = load_records(results_dir)
    labels = {row.run.name: row.run.label for row in rows}
    for a, b in spec.compare:
        if not records.get(a) or not records.get(b):
            print(
                f'{spec.name}: per-class plot {a} vs {b} skipped (a run '
                'has no metrics file yet)'
            )
            continue
        out = osp.join(results_dir, f'per_class_{a}_vs_{b}.png')
        title = f'{spec.title}: per-class accuracy, {labels[a]} vs {labels[b]}'
        plot_per_class(
            [(labels[a], records[a]), (labels[b], records[b])], out, title
        )
        written.append(out)
    heads = {run.name: _afg_head(run, ctx) for run in spec.runs}
    generating = [name for name, head in heads.items() if head is not None]
    confidence = write_confidence_table(
        spec, records, osp.join(results_dir, 'confidence.md'), generating
    )
    if confidence:
        written.append(confidence)
    ablation = write_ablation_table(
        spec, records, osp.join(results_dir, 'ablation.md')
    )
    if ablation:
        written.append(ablation)
    panels = reliability_panels(spec, records, labels)
    if panels:
        out = osp.join(results_dir, 'reliability.png')
        plot_reliability(panels, out, f'{spec.title}: test reliability')
        written.append(out)
    for run in spec.runs:
        if not records.get(run.name):
            continue
        head = heads[run.name]
        if head is None:
            continue
        for record in records[run.name]:
            history = confidence_history(ctx.path(record['work_dir']))
            if history:
                break
        if not history:
            print(
                f'{spec.name}: no epoch checkpoints with confidence scores '
                f'for {run.name} (work_dir gone, or max_keep_ckpts removed '
                'them); its confidence plot is left as it was'
            )
            continue
        out = osp.join(results_dir, f'confidence_{run.name}.png')
        plot_confidence(
            history,
            record['class_counts'],
            out,
            f'{spec.title}: {run.label}, seed {record["seed"]}',
            tail_threshold=head.get('tail_threshold', 100),
        )
        written.append(out)
    return written


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        targets = _targets(args)
    except SpecError as error:
        sys.exit(f'error: {error}')
    written = [
        plot_schedules(osp.join(args.results_root, 'plots', 'schedules.png'))
    ]
    for spec, results_dir in targets:
        written += report(spec, results_dir)
    for path in written:
        rel = osp.relpath(path)
        print(path if rel.startswith('..') else rel)
    return 0


if __name__ == '__main__':
    sys.exit(main())
