"""Choose a config's settings on the validation split, then test once.

    python tools/select_settings.py CONFIG [--spec SPEC.py]
        [--grid KEY=V1,V2 ...] [--cfg-options stage_one_checkpoint=PATH ...]
        [--criterion lt/top1] [--search grid|coordinate] [--max-runs N]
        [--resamples 1000] [--seed 0] [--work-dir DIR] [--dry-run]

Each point of the grid trains CONFIG (a single-stage config, e.g. stage two
with ``stage_one_checkpoint``) with ``tools/train.py`` in a subprocess, in
``DIR/points/<k>`` (its full config in ``config.py`` there). A point's
score is the criterion at its final validation (default ``lt/top1``;
``class_mean`` is ``lt/class_mean``; top1 or class_mean, optionally with
``_posthoc`` or ``_rebalanced``). The best point by score (ties: the first
in grid order) is chosen only if it beats the defaults beyond the noise of
the validation images; otherwise the defaults are kept. The defaults are
the point of every axis's first value: list the config's own setting
first. The noise: the validation's ``LongTailAccuracy`` writes each point's
per-image labels (``samples_file``, ``DIR/points/<k>/val_samples.json``),
and a paired bootstrap (``--resamples`` draws of the validation images,
``--seed``) gives each point's difference to the defaults, its bootstrap
mean and 95 % interval; a point beats the defaults beyond the noise when
the whole interval lies above zero. The same rule serves every method.
Only the chosen point's final checkpoint is tested, once, with
``tools/test.py``. ``DIR/selection.json`` and ``selection.md`` record the
grid, every point's validation scores and difference to the defaults, which
points were within the noise, the chosen setting, its test metrics and the
budget (runs, wall time); no other point is ever tested, so the record
holds no test number of any other.

A grid axis is a config key with its values, or a name whose values are
dicts of options changed together; a key names a list entry by position or
by ``type``: ``custom_hooks.GLAGDistillHook.temperature``. ``--search
grid`` trains the product of the axes; ``coordinate`` goes through the axes
in order, keeping each at its best value (1 + sum(k_i - 1) runs). A search
needing more than ``--max-runs`` runs is refused before anything trains,
and so is a config whose validation set is its test set. A stage-two loop
that caches without ``cache_dir`` gets ``DIR/feature_cache``: the frozen
trunk runs once for all points. A spec file
(``experiments/selection/*.py``) may set ``grid``, ``cfg_options``,
``criterion``, ``search`` and ``max_runs``; the command line wins. A point
with a ``point.json`` of the same options from an earlier call is reused,
not retrained.
"""

import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time
from copy import deepcopy

from mmengine.config import Config, DictAction

import glag_mm  # noqa: F401  (applies the compat fixes)
from glag_tools import ConfigError, resolve_stage_one_checkpoint
from glag_tools.config_hooks import stage_two_caches
from glag_tools.noise import (
    apply_noise_rule,
    criterion_labels,
    defaults_differ,
    noise_sentence,
    samples_metric,
)
from glag_tools.selection import (
    check_heldout_validation,
    final_validation,
    load_settings,
    planned_runs,
    point_options,
    resolve_key,
    search,
)

SAMPLES = 'val_samples.json'  # a point's per-image validation labels
REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('config', help='a single-stage (e.g. stage-two) config')
    p.add_argument('--spec', help='Python file: grid, cfg_options, ...')
    p.add_argument('--grid', nargs='+', action=DictAction, metavar='K=V,V')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    p.add_argument('--criterion', help='validation metric (lt/top1)')
    p.add_argument('--search', choices=['grid', 'coordinate'])
    p.add_argument('--max-runs', type=int, help='training runs at most')
    p.add_argument(
        '--resamples', type=int, default=1000, help='bootstrap draws (1000)'
    )
    p.add_argument('--seed', type=int, default=0, help='bootstrap seed (0)')
    p.add_argument('--work-dir', help='default ./work_dirs/select_<config>')
    p.add_argument('--dry-run', action='store_true', help='only the plan')
    return p.parse_args(argv)


class Selection:
    """Trains points on demand, remembers their scores and the budget."""

    def __init__(self, cfg, args, settings):
        self.cfg, self.settings = cfg, settings
        self.work_dir = osp.abspath(
            args.work_dir
            or osp.join(
                'work_dirs',
                'select_' + osp.splitext(osp.basename(args.config))[0],
            )
        )
        self.points, self.runs, self.seconds = {}, 0, 0.0

    def config_of(self, options: dict) -> Config:
        cfg = deepcopy(self.cfg)
        merged = dict(self.settings['cfg_options'], **options)
        for key, value in merged.items():
            cfg.merge_from_dict({resolve_key(cfg, key): value})
        shared = osp.join(self.work_dir, 'feature_cache')
        for cache in stage_two_caches(cfg):
            cache['cache_dir'] = cache.get('cache_dir') or shared
        resolve_stage_one_checkpoint(deepcopy(cfg), owner=self.cfg.filename)
        return cfg

    def call(self, tool: str, argv, log: str) -> float:
        env = dict(os.environ, PYTHONUNBUFFERED='1')
        env['PYTHONPATH'] = os.pathsep.join(
            [REPO] + [p for p in [env.get('PYTHONPATH')] if p]
        )
        cmd = [sys.executable, osp.join(REPO, 'tools', tool), *argv]
        start = time.perf_counter()
        with open(log, 'a') as f:
            f.write('$ ' + ' '.join(cmd) + '\n')
            f.flush()
            code = subprocess.run(cmd, env=env, stdout=f, stderr=f).returncode
        if code != 0:
            raise ConfigError(f'{tool} failed (exit {code}); see {log}')
        return time.perf_counter() - start

    def score(self, choice) -> float:
        key = tuple(choice)
        if key not in self.points:
            self.points[key] = self.train(len(self.points), choice)
        return self.points[key]['val'][self.settings['criterion']]

    def train(self, index: int, choice) -> dict:
        options = point_options(self.settings['axes'], choice)
        point_dir = osp.join(self.work_dir, 'points', f'{index:03d}')
        record_file = osp.join(point_dir, 'point.json')
        samples = osp.join(point_dir, SAMPLES)
        if osp.isfile(record_file) and osp.isfile(samples):
            with open(record_file) as f:
                record = json.load(f)
            if record['options'] == json.loads(json.dumps(options)):
                return record
        max_runs = self.settings['max_runs']
        if max_runs is not None and self.runs >= max_runs:
            raise ConfigError(f'--max-runs {max_runs} spent')
        os.makedirs(point_dir, exist_ok=True)
        config = osp.join(point_dir, 'config.py')
        cfg = self.config_of(options)
        metric = cfg.val_evaluator  # writes the per-image labels
        if isinstance(metric, (list, tuple)):
            metric = metric[samples_metric(cfg, self.cfg.filename)]
        metric['samples_file'] = samples
        cfg.dump(config)
        seconds = self.call(
            'train.py',
            [config, '--work-dir', point_dir],
            osp.join(point_dir, 'train.log'),
        )
        self.runs, self.seconds = self.runs + 1, self.seconds + seconds
        with open(osp.join(point_dir, 'last_checkpoint')) as f:
            checkpoint = f.read().strip()
        record = dict(
            index=index,
            choice=list(choice),
            options=options,
            val=final_validation(point_dir, self.settings['criterion']),
            checkpoint=checkpoint,
            config=config,
            samples=samples,
            train_seconds=round(seconds, 3),
        )
        _write(record_file, record)
        return record


def budget(selection: Selection, test_seconds: float, wall: float) -> dict:
    """Runs and seconds of the whole selection (earlier calls included)."""
    train = sum(p['train_seconds'] for p in selection.points.values())
    return dict(
        max_runs=selection.settings['max_runs'],
        training_runs=len(selection.points),
        trained_in_this_call=selection.runs,
        train_seconds=round(train, 3),
        test_seconds=round(test_seconds, 3),
        total_seconds=round(train + test_seconds, 3),
        wall_seconds_of_this_call=round(wall, 3),
    )


def _relative(value):
    """Paths under the working directory made relative to it (records
    name no machine's folders); other values unchanged."""
    if isinstance(value, dict):
        return {k: _relative(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_relative(v) for v in value]
    root = osp.join(os.getcwd(), '')
    if isinstance(value, str) and value.startswith(root):
        return value[len(root) :]
    return value


def _write(path: str, record: dict) -> None:
    with open(path + '.tmp', 'w') as f:
        json.dump(record, f, indent=2)
    os.replace(path + '.tmp', path)


def write_markdown(path: str, record: dict) -> None:
    crit = record['criterion']
    lines = [
        f'# Settings of {record["config"]} chosen on validation',
        '',
        f'Search: {record["search"]}, criterion: validation `{crit}`; '
        f'{record["budget"]["training_runs"]} training runs '
        f'(limit: {record["budget"]["max_runs"] or "none"}), 1 test run, '
        f'{record["budget"]["total_seconds"] / 60:.1f} min in all.',
        '',
        noise_sentence(record['noise']),
        '',
        f'| point | setting | validation {crit} | difference to the '
        'defaults (bootstrap mean) [95 % interval] | beyond the noise |',
        '|---|---|---|---|---|',
    ]
    for p in record['points']:
        mark = ' (chosen)' if p['index'] == record['chosen']['index'] else ''
        n = p['noise']
        beyond = 'yes' if n['beyond_noise'] else 'no'
        lines.append(
            f'| {p["index"]}{mark} | {json.dumps(p["options"])} | '
            f'{p["val"][crit]:.2f} | {n["difference"]:+.2f} '
            f'({n["mean"]:+.2f}) [{n["interval"][0]:+.2f}, '
            f'{n["interval"][1]:+.2f}] | {beyond} |'
        )
    test = record['test']['metrics']
    lines += [
        '',
        'Test split, chosen point only: '
        + ', '.join(
            f'{k} {v:.2f}' for k, v in test.items() if isinstance(v, float)
        ),
    ]
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    try:
        settings = load_settings(
            args.spec,
            args.grid,
            args.cfg_options,
            args.criterion,
            args.search,
            args.max_runs,
        )
        cfg = Config.fromfile(args.config)
        check_heldout_validation(cfg, args.config)
        criterion_labels(settings['criterion'])  # its noise can be measured
        samples_metric(cfg, args.config)
        if args.resamples < 1:
            raise ConfigError(
                f'--resamples must be >= 1, got {args.resamples}'
            )
        selection = Selection(cfg, args, settings)
        runs = planned_runs(settings)
        if settings['max_runs'] is not None and runs > settings['max_runs']:
            raise ConfigError(
                f'the {settings["search"]} search needs {runs} training runs,'
                f' over --max-runs {settings["max_runs"]}: shrink the grid, '
                'raise --max-runs or use --search coordinate.'
            )
        for name, values in settings['axes']:  # every value applies
            for value in values:
                selection.config_of(point_options([(name, [value])], [0]))
        differ = defaults_differ(selection.config_of({}), settings['axes'])
        if differ:
            print(
                'warning: the first value of every axis is the defaults the '
                'selection keeps unless beaten beyond the noise, but these '
                f'differ from the config: {differ}'
            )
        print(f'{settings["search"]} search: {runs} training runs planned')
        if args.dry_run:
            for name, values in settings['axes']:
                print(f'  {name}: {values}')
            return 0
        chosen, noise = apply_noise_rule(
            selection, search(selection), args.resamples, args.seed
        )
        noise['defaults_differ_from_config'] = differ
        best = selection.points[chosen]
        test_dir = osp.join(selection.work_dir, 'test')
        os.makedirs(test_dir, exist_ok=True)
        out = osp.join(test_dir, 'test_metrics.json')
        test_seconds = selection.call(
            'test.py',
            [
                best['config'],
                best['checkpoint'],
                '--work-dir',
                test_dir,
                '--out',
                out,
                '--out-item',
                'metrics',
            ],
            osp.join(test_dir, 'test.log'),
        )
    except ConfigError as error:
        sys.exit(f'error: {error}')
    with open(out) as f:
        metrics = json.load(f)
    points = sorted(selection.points.values(), key=lambda p: p['index'])
    record = dict(
        config=args.config,
        criterion=settings['criterion'],
        search=settings['search'],
        grid=[dict(axis=n, values=v) for n, v in settings['axes']],
        cfg_options=settings['cfg_options'],
        points=points,
        chosen=dict(
            index=best['index'],
            options=best['options'],
            val=best['val'][settings['criterion']],
        ),
        test=dict(
            checkpoint=best['checkpoint'],
            metrics={
                k: v for k, v in metrics.items() if not isinstance(v, dict)
            },
        ),
        noise=noise,
        budget=budget(selection, test_seconds, time.perf_counter() - start),
    )
    record = _relative(record)  # the record to commit names no machine path
    _write(osp.join(selection.work_dir, 'selection.json'), record)
    write_markdown(osp.join(selection.work_dir, 'selection.md'), record)
    print(
        f'chosen point {best["index"]}: {best["options"]}; '
        f'record: {osp.join(selection.work_dir, "selection.json")}'
    )
    return 0


if __name__ == '__main__':
    sys.exit(main())
