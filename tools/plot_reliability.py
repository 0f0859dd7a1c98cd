"""Reliability diagrams (PNG) from LongTailAccuracy's reliability tables.

    python tools/test.py CONFIG CKPT --out metrics.json --out-item metrics
    python tools/plot_reliability.py metrics.json [more.json ...] \\
        --names CE GLAG --out reliability.png

``LongTailAccuracy`` reports ``lt/reliability`` whenever the model returns
``pred_score``: for each of the B equal-width confidence bins the number of
test predictions, their mean top-1 confidence and their accuracy (percent,
None for an empty bin), and the ECE. Each table becomes one panel: the
accuracy of every bin as a bar over the bin, the gap to the bin's mean
confidence shaded, the diagonal of perfect calibration, and the share of
predictions per bin below [prior: the diagram of Guo et al. 2017, fig. 1].
"""

import argparse
import json
import os
import os.path as osp
import pickle
import textwrap
from typing import Dict, List, Mapping, Optional, Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ['load_reliability', 'plot_reliability', 'main']

KEY = 'lt/reliability'
_FIELDS = ('count', 'confidence', 'accuracy')


def _check_table(table: Mapping, name: str) -> dict:
    if not isinstance(table, Mapping) or any(f not in table for f in _FIELDS):
        raise ValueError(
            f'{name}: a reliability table needs the lists {_FIELDS} (the '
            f"'{KEY}' entry of LongTailAccuracy's results)"
        )
    sizes = {len(table[f]) for f in _FIELDS}
    if len(sizes) != 1 or not sizes.pop():
        raise ValueError(f'{name}: count, confidence, accuracy differ in size')
    return dict(table)


def load_reliability(path: str) -> dict:
    """The reliability table in a metrics file (.json or .pkl).

    The file may hold the metrics dict that ``tools/test.py --out FILE
    --out-item metrics`` writes (the table is its ``lt/reliability``), a
    list with that dict first, or the table itself.
    """
    if path.endswith(('.pkl', '.pickle')):
        with open(path, 'rb') as f:
            data = pickle.load(f)
    else:
        with open(path) as f:
            data = json.load(f)
    if isinstance(data, list) and data:
        data = data[0]
    if isinstance(data, Mapping) and KEY in data:
        data = data[KEY]
    if isinstance(data, Mapping) and 'metrics' in data:
        data = data['metrics'].get(KEY, data)
    if not isinstance(data, Mapping) or 'count' not in data:
        raise ValueError(
            f'{path} has no {KEY!r}: test with LongTailAccuracy(ece_bins=15, '
            'reliability=True) on a model that returns pred_score, and write '
            'the metrics with --out FILE --out-item metrics.'
        )
    return _check_table(data, path)


def _panel(ax, count_ax, table: dict, name: str) -> dict:
    bins = len(table['count'])
    width = 100.0 / bins
    centres = [(b + 0.5) * width for b in range(bins)]
    filled = [b for b in range(bins) if table['count'][b]]
    acc = [table['accuracy'][b] for b in filled]
    conf = [table['confidence'][b] for b in filled]
    xs = [centres[b] for b in filled]
    ax.bar(
        xs,
        acc,
        width=width,
        color='tab:blue',
        edgecolor='black',
        linewidth=0.5,
        label='accuracy',
    )
    gaps = [c - a for a, c in zip(acc, conf)]
    ax.bar(
        xs,
        gaps,
        bottom=acc,
        width=width,
        color='tab:red',
        alpha=0.3,
        edgecolor='tab:red',
        hatch='//',
        linewidth=0.5,
        label='gap to confidence',
    )
    ax.plot([0, 100], [0, 100], '--', color='gray', linewidth=1)
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.set_aspect('equal')
    ax.set_ylabel('accuracy (%)')
    ece = table.get('ece')
    title = name if ece is None else f'{name}: ECE {ece:.2f} %'
    # wrapped to the panel's width, so side-by-side titles never overlap
    ax.set_title(textwrap.fill(title, 40), fontsize=10)
    ax.legend(loc='upper left', fontsize=8)
    total = sum(table['count']) or 1
    shares = [100.0 * c / total for c in table['count']]
    count_ax.bar(
        centres,
        shares,
        width=width,
        color='tab:gray',
        edgecolor='black',
        linewidth=0.5,
    )
    count_ax.set_xlim(0, 100)
    count_ax.set_xlabel('top-1 confidence (%)')
    count_ax.set_ylabel('predictions (%)')
    return dict(
        centres=xs,
        accuracy=acc,
        confidence=conf,
        shares=shares,
        width=width,
    )


def plot_reliability(
    tables: Mapping[str, Mapping],
    out: str,
    title: Optional[str] = None,
) -> Dict[str, dict]:
    """Draw one reliability panel per table into the PNG ``out``.

    Args:
        tables: panel name -> reliability table (``lt/reliability``).
        out: the PNG to write (folders are made).
        title: a figure title.

    Returns:
        per panel, what was drawn: the bar ``centres`` (percent), their
        ``accuracy`` and ``confidence`` (non-empty bins), the ``shares`` of
        predictions per bin and the bar ``width``.
    """
    if not tables:
        raise ValueError('plot_reliability: no reliability table given')
    checked = {name: _check_table(t, name) for name, t in tables.items()}
    n = len(checked)
    fig, axes = plt.subplots(
        2,
        n,
        figsize=(3.6 * n, 5.2),
        squeeze=False,
        gridspec_kw=dict(height_ratios=[3, 1]),
    )
    drawn = {}
    for i, (name, table) in enumerate(checked.items()):
        drawn[name] = _panel(axes[0][i], axes[1][i], table, name)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return drawn


def parse_args(argv: Optional[Sequence[str]] = None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        'metrics', nargs='+', help='metrics files (.json / .pkl) to plot'
    )
    parser.add_argument(
        '--names', nargs='+', help='panel names (default: the file names)'
    )
    parser.add_argument('--out', required=True, help='the PNG to write')
    parser.add_argument('--title', help='figure title')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> List[str]:
    args = parse_args(argv)
    names = args.names or [
        osp.splitext(osp.basename(p))[0] for p in args.metrics
    ]
    if len(names) != len(args.metrics):
        raise SystemExit(
            f'error: {len(names)} --names for {len(args.metrics)} files'
        )
    tables = {n: load_reliability(p) for n, p in zip(names, args.metrics)}
    plot_reliability(tables, args.out, title=args.title)
    print(f'wrote {args.out}')
    return [args.out]


if __name__ == '__main__':
    main()
