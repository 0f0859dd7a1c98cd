"""The demo: long-tailed Fashion-MNIST, trained several ways, one table.

    python tools/demo.py --data-root data/fashion-mnist [--work-dir DIR]

Each row of :data:`ROWS` is a method: a config under ``configs/demo/`` that
is trained on Fashion-MNIST-LT (imbalance factor 100, 14,886 images) and
then tested once on the balanced 10,000-image test set. A row may start from
the final checkpoint of an earlier row (``stage_one='<row name>'``: its
config's ``stage_one_checkpoint`` key receives it), so stage-two methods
reuse a stage one trained once: the table's first four rows are stage one
(CE, GraLoss, GALA, FBL; 8 epochs), the last four stage two on a frozen
stage-one trunk (cRT, LWS, GLAG = AFG + KD; 10 epochs on cached features,
validated on held-out training images, never the test set). A row's config
may also be a two-stage config (``stages = [...]``); its last stage's model
is tested. The table (markdown, on stdout) gives top-1 and many / medium /
few-shot accuracy; progress and timings go to stderr.
"""

import argparse
import contextlib
import math
import os
import os.path as osp
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Dict, List, Optional

import torch
from mmengine.config import Config

import glag_mm  # noqa: F401  (applies the compat fixes before configs load)
from glag_tools import run_config
from glag_tools.config_hooks import stage_two_caches

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
METRIC_KEYS = ('lt/top1', 'lt/many', 'lt/medium', 'lt/few')
COLUMNS = ('top-1', 'many', 'medium', 'few')


@dataclass
class Row:
    """One method of the demo table.

    Args:
        name: the method as the table shows it.
        config: its config, relative to the repository.
        stage_one: name of an earlier row whose final checkpoint this row
            gets as ``stage_one_checkpoint``.
    """

    name: str
    config: str
    stage_one: Optional[str] = None


ROWS: List[Row] = [
    Row('CE', 'configs/demo/ce_r8_fmnistlt.py'),
    Row('GraLoss', 'configs/demo/graloss_r8_fmnistlt.py'),
    Row('GALA', 'configs/demo/gala_r8_fmnistlt.py'),
    Row('FBL', 'configs/demo/fbl_r8_fmnistlt.py'),
    Row('CE + cRT', 'configs/demo/crt_r8_fmnistlt.py', stage_one='CE'),
    Row(
        'GraLoss + cRT',
        'configs/demo/crt_r8_fmnistlt.py',
        stage_one='GraLoss',
    ),
    Row(
        'GraLoss + LWS',
        'configs/demo/lws_r8_fmnistlt.py',
        stage_one='GraLoss',
    ),
    Row(
        'GLAG (GraLoss + AFG + KD)',
        'configs/demo/glag_r8_fmnistlt.py',
        stage_one='GraLoss',
    ),
]


def set_data_root(node, data_root: str) -> None:
    """Point every FashionMNIST dataset of a config at ``data_root``."""
    if isinstance(node, dict):
        if node.get('type') == 'FashionMNIST':
            node['data_root'] = data_root
        for value in node.values():
            set_data_root(value, data_root)
    elif isinstance(node, (list, tuple)):
        for value in node:
            set_data_root(value, data_root)


def _slug(name: str) -> str:
    keep = [c.lower() if c.isalnum() else '_' for c in name]
    return '_'.join(filter(None, ''.join(keep).split('_')))


# mmengine's console log goes here; its full log stays in each work_dir
_CONSOLE = open(os.devnull, 'w')  # kept open: loggers outlive a row


# hooks whose progress bars write to the process's stdout, where the table
# goes; the demo's own progress lines on stderr stand in for them
_QUIET_HOOKS = ('AFGHook',)


def _configure(cfg: Config, data_root: str) -> None:
    for key in list(cfg.keys()):
        set_data_root(cfg[key], data_root)
    for hook in cfg.get('custom_hooks', None) or []:
        if hook.get('type') in _QUIET_HOOKS:
            hook['progress'] = False
    for cache in stage_two_caches(cfg):  # the loops' feature passes
        cache['progress'] = False


def run_row(
    row: Row, data_root: str, work_dir: str, stage_one: Optional[str]
) -> Dict:
    """Train and test one row; return its test metrics and checkpoint."""
    path = osp.join(REPO, row.config)
    row_dir = osp.join(work_dir, _slug(row.name))
    options = {} if stage_one is None else {'stage_one_checkpoint': stage_one}
    finished = run_config(
        path,
        work_dir=row_dir,
        cfg_options=options,
        configure=lambda cfg: _configure(cfg, data_root),
        name=_slug(row.name),
    )
    runner, checkpoint = finished.runner, finished.checkpoint
    metrics = runner.test()
    return dict(metrics=metrics, checkpoint=checkpoint)


def format_table(results: Dict[str, Dict[str, float]]) -> str:
    """A markdown table: one row per method, top-1 and the shot groups."""

    def cell(value) -> str:
        if value is None or math.isnan(value):
            return '—'
        return f'{value:.1f}'

    lines = [
        '| method | ' + ' | '.join(COLUMNS) + ' |',
        '|---|' + '---:|' * len(COLUMNS),
    ]
    for name, metrics in results.items():
        cells = [cell(metrics.get(key)) for key in METRIC_KEYS]
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--data-root',
        default='data/fashion-mnist',
        help='folder with the four un-gzipped Fashion-MNIST idx files '
        '(tools/get_fashion_mnist.sh makes it)',
    )
    parser.add_argument(
        '--work-dir',
        default='work_dirs/demo',
        help='where each method trains (work_dir/<method>)',
    )
    parser.add_argument(
        '--threads',
        type=int,
        default=1,
        help='torch CPU threads (default 1: on a small shared machine two '
        'threads that compete with other processes can be many times '
        'slower than one)',
    )
    parser.add_argument(
        '--rows',
        nargs='+',
        help='run only these methods (names as in the table)',
    )
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    warnings.filterwarnings('ignore')
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        run_demo(args)
    finally:
        torch.set_num_threads(threads)


def run_demo(args) -> None:
    data_root = osp.abspath(args.data_root)
    rows = ROWS
    if args.rows:
        unknown = set(args.rows) - {r.name for r in ROWS}
        if unknown:
            sys.exit(
                f'error: unknown rows {sorted(unknown)}; the demo has '
                f'{[r.name for r in ROWS]}'
            )
        rows = [r for r in ROWS if r.name in args.rows]
    checkpoints: Dict[str, str] = {}
    results: Dict[str, Dict[str, float]] = {}
    start = time.time()
    for i, row in enumerate(rows, start=1):
        stage_one = None
        if row.stage_one is not None:
            if row.stage_one not in checkpoints:
                sys.exit(
                    f'error: row {row.name!r} starts from row '
                    f'{row.stage_one!r}, which must run before it.'
                )
            stage_one = checkpoints[row.stage_one]
        print(
            f'[{i}/{len(rows)}] {row.name}: {row.config}',
            file=sys.stderr,
            flush=True,
        )
        row_start = time.time()
        with contextlib.redirect_stdout(_CONSOLE):
            out = run_row(row, data_root, args.work_dir, stage_one)
        checkpoints[row.name] = out['checkpoint']
        results[row.name] = out['metrics']
        print(
            f'[{i}/{len(rows)}] {row.name}: top-1 '
            f'{out["metrics"].get("lt/top1", float("nan")):.1f} '
            f'({time.time() - row_start:.0f} s)',
            file=sys.stderr,
            flush=True,
        )
    print(format_table(results))
    print(
        f'{len(rows)} methods in {time.time() - start:.0f} s; logs and '
        f'checkpoints in {args.work_dir}',
        file=sys.stderr,
    )


if __name__ == '__main__':
    main()
