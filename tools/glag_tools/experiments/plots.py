"""Report plots (matplotlib, Agg backend, PNG).

* :func:`plot_per_class`: per-class test accuracy against the class's
  training count (log x), two runs, mean over their seeds;
* :func:`plot_schedules`: tau(u) of GraLoss and beta(u) of the KD term
  for every schedule shape, from :func:`glag_mm.core.schedule_value`;
* :func:`confidence_history` / :func:`plot_confidence`: the adaptive
  confidence s_c of AFGHead after each update, read from the scalars
  AFGHook logs (``scalars.json``; older runs: the ``epoch_<k>.pth``
  checkpoints, buffer ``head.confidence``; in those, saved before the
  epoch's validation, checkpoint k holds s_c after validations 1 .. k-1).
"""

import glob
import json
import math
import os
import os.path as osp
import re
import textwrap
from typing import Dict, List, Optional, Sequence, Tuple

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

from glag_mm.core import SCHEDULES, schedule_value  # noqa: E402

__all__ = [
    'mean_per_class',
    'plot_per_class',
    'plot_schedules',
    'confidence_history',
    'plot_confidence',
]

_COLORS = ('tab:gray', 'tab:red', 'tab:blue', 'tab:green')


def mean_per_class(records: Sequence[dict]) -> np.ndarray:
    """Per-class accuracy averaged over the records (seeds), NaN-aware."""
    rows = np.array(
        [
            [np.nan if v is None else v for v in r['per_class_accuracy']]
            for r in records
        ],
        dtype=float,
    )
    with np.errstate(invalid='ignore'):
        return np.nanmean(rows, axis=0) if len(rows) else rows


def _group_lines(ax, record: dict) -> None:
    few, many = record['few_threshold'], record['many_threshold']
    for x, text in ((few, f'few < {few:g}'), (many, f'many > {many:g}')):
        ax.axvline(x, color='0.6', linestyle='--', linewidth=0.8)
        ax.text(
            x,
            1.0,
            f' {text}',
            transform=ax.get_xaxis_transform(),
            va='top',
            fontsize=8,
            color='0.4',
        )


def _summary(label: str, records: Sequence[dict]) -> str:
    def mean(key):
        xs = [r[key] for r in records if r.get(key) is not None]
        return f'{np.mean(xs):.1f}' if xs else 'n/a'

    return (
        f'{label} (n={len(records)}): top-1 {mean("top1")}, many '
        f'{mean("many")}, med {mean("medium")}, few {mean("few")}'
    )


def plot_per_class(
    runs: Sequence[Tuple[str, Sequence[dict]]], out_path: str, title: str
) -> str:
    """Per-class accuracy vs training count for two (or more) runs.

    Args:
        runs: (label, metrics records of its seeds) pairs.
        out_path: the PNG to write.
        title: the figure title.
    """
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    counts = np.asarray(runs[0][1][0]['class_counts'], dtype=float)
    means = []
    for i, (label, records) in enumerate(runs):
        if list(records[0]['class_counts']) != list(counts):
            raise ValueError(
                f'{label}: its training class counts differ from '
                f"{runs[0][0]}'s; per-class accuracies are not comparable"
            )
        acc = mean_per_class(records)
        means.append(acc)
        ax.scatter(
            counts,
            acc,
            s=28 if len(counts) <= 100 else 6,
            color=_COLORS[(i + 1) % len(_COLORS)],
            alpha=0.85,
            label=_summary(label, records),
            zorder=3,
        )
    if len(runs) == 2 and len(counts) <= 100:
        for x, a, b in zip(counts, *means):
            ax.plot([x, x], [a, b], color='0.75', linewidth=1, zorder=1)
    ax.set_xscale('log')
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f'{x:g}'))
    ax.set_xlabel('training images of the class (log scale)')
    ax.set_ylabel('test accuracy of the class (%)')
    ax.set_ylim(-3, 103)
    _group_lines(ax, runs[0][1][0])
    ax.set_title(_wrap(title), fontsize=10)
    ax.legend(loc='lower right', fontsize=8)
    ax.grid(True, which='major', alpha=0.3)
    fig.tight_layout()
    return _save(fig, out_path)


def plot_schedules(
    out_path: str,
    tau_max: float = 1.0,
    beta_max: float = 1.0,
    power: float = 2.0,
) -> str:
    """tau(u) (GraLoss) and beta(u) (KD weight) for every schedule shape."""
    u = np.linspace(0.0, 1.0, 201)
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.3), dpi=120, sharey=True)
    panels = (
        (axes[0], 'tau', tau_max, 'GraLoss logit adjustment tau(u)'),
        (axes[1], 'beta', beta_max, 'KD weight beta(u) in stage two'),
    )
    for ax, symbol, top, title in panels:
        for color, shape in zip(_COLORS[1:] + _COLORS[:1], SCHEDULES):
            values = [schedule_value(x, shape, top, power) for x in u]
            ax.plot(u, values, color=color, linewidth=2, label=shape)
        ax.set_title(f'{title}, {symbol}_max = {top:g}', fontsize=10)
        ax.set_xlabel('progress u through the stage (iter / max_iters)')
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel('value')
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        title=f'schedule (power p = {power:g})',
        loc='lower center',
        ncol=len(SCHEDULES),
        fontsize=8,
        title_fontsize=8,
    )
    fig.suptitle(
        'convex: v_max u^p; linear: v_max u; concave: v_max u^(1/p); '
        'constant: v_max',
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return _save(fig, out_path)


def _epoch_files(directory: str) -> List[Tuple[int, str]]:
    found = []
    for path in glob.glob(osp.join(directory, 'epoch_*.pth')):
        match = re.fullmatch(r'epoch_(\d+)\.pth', osp.basename(path))
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def _load_state(path: str) -> Dict:
    from glag_mm.safe_load import load_checkpoint_file

    checkpoint = load_checkpoint_file(path, map_location='cpu')
    return checkpoint.get('state_dict', checkpoint)


def _confidence_key(state: Dict) -> Optional[str]:
    keys = [k for k in state if k.endswith('head.confidence')]
    return keys[0] if keys else None


def _logged_confidence(directory: str) -> List[Tuple[int, np.ndarray]]:
    """(update k, s_c) from the ``afg/s_c/<c>`` scalars AFGHook logs."""
    records = []
    for path in sorted(
        glob.glob(osp.join(directory, '*', 'vis_data', 'scalars.json'))
    ):
        with open(path) as f:
            records += [json.loads(line) for line in f if 'afg/s_c/' in line]
    by_update = {}
    for record in records:  # a resumed run logs on; the last value wins
        scores = {
            int(k.rsplit('/', 1)[1]): v
            for k, v in record.items()
            if k.startswith('afg/s_c/')
        }
        if scores:
            by_update[int(record['afg/confidence_updates'])] = scores
    history = []
    for update in sorted(by_update):
        scores = by_update[update]
        values = np.full(max(scores) + 1, np.nan)
        values[list(scores)] = list(scores.values())
        history.append((update, values))
    return history


def confidence_history(work_dir: str) -> List[Tuple[int, np.ndarray]]:
    """(update k, s_c) after each confidence update of an AFGHead run.

    Read from the scalars AFGHook logs after every update
    (``<run>/vis_data/scalars.json``, tail classes only, NaN elsewhere);
    for runs that logged none, from the ``epoch_<k>.pth`` checkpoints
    (buffer ``head.confidence``). Looks in ``work_dir`` and, for a
    two-stage run, its stage sub-directories; returns [] where neither is
    found.
    """
    directories = [work_dir] + sorted(
        d for d in glob.glob(osp.join(work_dir, '*')) if osp.isdir(d)
    )
    for directory in directories:
        history = _logged_confidence(directory)
        if history:
            return history
    for directory in directories:
        files = _epoch_files(directory)
        if not files:
            continue
        key = _confidence_key(_load_state(files[-1][1]))
        if key is None:
            continue
        history = []
        for epoch, path in files:
            value = _load_state(path)[key]
            history.append((epoch, value.float().numpy().copy()))
        return history
    return []


def plot_confidence(
    history: Sequence[Tuple[int, np.ndarray]],
    class_counts: Sequence[int],
    out_path: str,
    title: str,
    tail_threshold: float = 100,
) -> str:
    """s_c of every tail class across stage-two epochs, coloured by n_c."""
    counts = np.asarray(class_counts, dtype=float)
    threshold = (
        tail_threshold * counts.max()
        if 0 < tail_threshold < 1
        else tail_threshold
    )
    tail = np.flatnonzero(counts < threshold)
    epochs = np.array([e for e, _ in history])
    values = np.stack([v for _, v in history])
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=120)
    cmap = plt.get_cmap('viridis')
    low, high = math.log(max(counts.min(), 1)), math.log(counts.max())
    norm = plt.Normalize(low, high if high > low else low + 1)
    for c in tail:
        ax.plot(
            epochs,
            values[:, c],
            marker='o',
            markersize=3,
            linewidth=1.2,
            color=cmap(norm(math.log(max(counts[c], 1)))),
            alpha=0.9 if len(tail) <= 50 else 0.4,
        )
    mappable = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
    bar = fig.colorbar(mappable, ax=ax)
    ticks = [
        t
        for t in (2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000)
        if counts.min() <= t <= counts.max()
    ]
    bar.set_ticks([math.log(t) for t in ticks])
    bar.set_ticklabels([str(t) for t in ticks])
    bar.set_label('training images of the class')
    ax.set_xlabel('confidence update k (after the k-th validation)')
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel('confidence score s_c')
    ax.set_ylim(-0.03, 1.03)
    ax.set_title(
        f'{_wrap(title)}\n{len(tail)} tail classes (n_c < {threshold:g}); '
        'the others are not updated',
        fontsize=10,
    )
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return _save(fig, out_path)


def _wrap(title: str, width: int = 90) -> str:
    """Break a long title into lines that fit the figure."""
    return '\n'.join(textwrap.wrap(title, width)) or title


def _save(fig, out_path: str) -> str:
    os.makedirs(osp.dirname(osp.abspath(out_path)), exist_ok=True)
    fig.savefig(out_path)
    plt.close(fig)
    return out_path
