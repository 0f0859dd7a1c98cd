"""Experiment spec files: which runs make up one results table.

A spec is a Python file under ``experiments/`` that sets plain variables::

    title = 'CIFAR-10-LT, IF 100, ResNet-32'
    description = 'Shortened schedule: 30 stage-one epochs ...'  # optional
    seeds = [0]                                # default seeds of every run
    runs = [
        dict(name='ce', label='CE', group='stage one',
             config='configs/ce/ce_r32_cifar10lt_if100_jpg.py',
             cfg_options={'train_cfg.max_epochs': 30}, epochs=30),
        dict(name='graloss', label='GraLoss', group='stage one',
             config='configs/graloss/graloss_r32_cifar10lt_if100_jpg.py',
             baseline=['ce']),
        dict(name='graloss_crt', label='GraLoss + cRT', group='stage two',
             config='configs/crt/crt_r32_cifar10lt_if100_jpg.py',
             stage_one_from='graloss', stage_one_seed=0, seeds=[0, 1, 2]),
    ]
    compare = [('ce', 'graloss_afg_kd')]       # per-class accuracy plots

Fields of a run:

* ``name`` (required): identifier, also the file name of its metrics
  (letters, digits, ``_ . + -``).
* ``config`` (required): config file, relative to the repository root
  (the directory holding ``tools/``) unless absolute. A two-stage config
  (``stages = [...]``) trains both stages in one run.
* ``label``: the row title in the tables (default: ``name``).
* ``group``: the section of the table (default ``''``).
* ``cfg_options``: ``{dotted.key: value}`` passed to ``tools/train.py``
  and ``tools/test.py`` as ``--cfg-options`` (values: numbers, strings,
  booleans, None, or lists / tuples of those).
* ``test_options``: ``{dotted.key: value}`` for ``tools/test.py`` only
  (evaluation settings, e.g. :data:`POSTHOC_TAU_FROM_VAL`); a done run
  whose test_options change is tested again, and trained again only where
  its work_dir no longer holds the training.
* ``seeds``: this run's seeds (default: the spec's ``seeds``).
* ``epochs``: the schedule the table states, checked against the config
  (an int; for a two-stage config a dict ``{stage name: epochs}``).
* ``stage_one_from``: name of another run of the spec whose final
  checkpoint this run receives as ``stage_one_checkpoint`` (for stage-two
  configs that use ``'{stage_one_checkpoint}'``).
* ``stage_one_seed``: which seed of that run; default: the same seed.
* ``test_only``: True: no training, ``tools/test.py`` tests the final
  checkpoint of ``stage_one_from`` with this run's config and options.
* ``baseline``: name or list of names of runs this one should beat; the
  table marks every column where it does not.
* ``note``: free text for the table's footnotes.
"""

import json
import os.path as osp
import re
import runpy
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Union

__all__ = [
    'SpecError',
    'RunSpec',
    'ExperimentSpec',
    'load_spec',
    'spec_from_dict',
    'chosen_settings',
    'POSTHOC_TAU_FROM_VAL',
    'schedule_options',
]

_NAME = re.compile(r'^[A-Za-z0-9_.+-]+$')
_RUN_KEYS = {
    'name',
    'config',
    'label',
    'group',
    'cfg_options',
    'test_options',
    'seeds',
    'epochs',
    'stage_one_from',
    'stage_one_seed',
    'test_only',
    'baseline',
    'note',
}
_SCALARS = (int, float, str, bool, type(None))


class SpecError(ValueError):
    """An experiment spec that cannot run; the message says what to fix."""


@dataclass
class RunSpec:
    """One row of a results table (see the module docstring)."""

    name: str
    config: str
    label: str = ''
    group: str = ''
    cfg_options: Dict[str, Any] = field(default_factory=dict)
    test_options: Dict[str, Any] = field(default_factory=dict)
    seeds: List[int] = field(default_factory=list)
    epochs: Optional[Union[int, Dict[str, int]]] = None
    stage_one_from: Optional[str] = None
    stage_one_seed: Optional[int] = None
    test_only: bool = False
    baseline: List[str] = field(default_factory=list)
    note: str = ''

    def stage_one_seed_for(self, seed: int) -> int:
        """The seed of the ``stage_one_from`` run that seed ``seed`` uses."""
        return seed if self.stage_one_seed is None else self.stage_one_seed


@dataclass
class ExperimentSpec:
    """A spec file, validated: its runs in table order."""

    name: str
    runs: List[RunSpec]
    title: str = ''
    description: str = ''
    seeds: List[int] = field(default_factory=lambda: [0])
    compare: List[Tuple[str, str]] = field(default_factory=list)
    path: str = ''

    def run(self, name: str) -> RunSpec:
        for run in self.runs:
            if run.name == name:
                return run
        raise SpecError(
            f'spec {self.name!r} has no run {name!r}; its runs are '
            f'{[r.name for r in self.runs]}'
        )

    def to_dict(self) -> dict:
        """A JSON-able snapshot (``results/<spec>/spec.json``)."""
        data = asdict(self)
        data['compare'] = [list(pair) for pair in self.compare]
        return data


def _seeds(value: Any, where: str) -> List[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise SpecError(f'{where}: seeds must be a non-empty list of ints')
    for seed in value:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise SpecError(f'{where}: seed {seed!r} is not an int >= 0')
    if len(set(value)) != len(value):
        raise SpecError(f'{where}: seeds repeat: {list(value)}')
    return [int(s) for s in value]


def _check_option_value(value: Any, where: str) -> None:
    if isinstance(value, (list, tuple)):
        if not all(isinstance(v, _SCALARS) for v in value):
            raise SpecError(
                f'{where}: list values may only hold numbers, strings, '
                f'booleans or None, got {value!r}'
            )
        for v in value:
            _check_option_value(v, where)
        return
    if not isinstance(value, _SCALARS):
        raise SpecError(
            f'{where}: cfg_options values must be numbers, strings, '
            f'booleans, None or lists of those, got {value!r}; use one '
            "dotted key per leaf, e.g. {'model.head.loss.tau_max': 1.0}"
        )
    if isinstance(value, str) and (
        not value or any(c in value for c in ' ,[]()"\'=')
    ):
        raise SpecError(
            f'{where}: the string {value!r} cannot pass through '
            '--cfg-options (empty, or holds a space, comma, bracket, '
            'quote or =); set it in a config file instead'
        )


def _epochs(value: Any, where: str) -> Optional[Union[int, Dict[str, int]]]:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return int(value)
    if isinstance(value, dict) and value:
        out = {}
        for stage, n in value.items():
            if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
                raise SpecError(f'{where}: epochs[{stage!r}] must be an int')
            out[str(stage)] = int(n)
        return out
    raise SpecError(
        f'{where}: epochs must be a positive int or, for a two-stage '
        f'config, a dict {{stage name: epochs}}; got {value!r}'
    )


def _option_dict(entry: dict, kind: str, where: str) -> Dict[str, Any]:
    """A run's cfg_options / test_options, checked."""
    options = dict(entry.get(kind) or {})
    for key, value in options.items():
        if not isinstance(key, str) or not key or ' ' in key or '=' in key:
            raise SpecError(f'{where}: bad {kind} key {key!r}')
        _check_option_value(value, f'{where}, {kind}[{key!r}]')
    if 'randomness.seed' in options:
        raise SpecError(
            f'{where}: set seeds with seeds=[...], not randomness.seed'
        )
    return options


def _run_from_dict(entry: Any, index: int, seeds: List[int]) -> RunSpec:
    where = f'runs[{index}]'
    if not isinstance(entry, dict):
        raise SpecError(f'{where} must be a dict, got {entry!r}')
    unknown = set(entry) - _RUN_KEYS
    if unknown:
        raise SpecError(
            f'{where} has unknown keys {sorted(unknown)}; allowed: '
            f'{sorted(_RUN_KEYS)}'
        )
    for key in ('name', 'config'):
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise SpecError(f'{where} needs a non-empty string {key!r}')
    name = entry['name']
    where = f'run {name!r}'
    if not _NAME.match(name):
        raise SpecError(
            f'{where}: a run name may hold letters, digits and _ . + - '
            '(it names the metrics file); put prose in label='
        )
    options, test_options = (
        _option_dict(entry, kind, where)
        for kind in ('cfg_options', 'test_options')
    )
    baseline = entry.get('baseline') or []
    if isinstance(baseline, str):
        baseline = [baseline]
    stage_one_seed = entry.get('stage_one_seed')
    if stage_one_seed is not None:
        stage_one_seed = _seeds(stage_one_seed, where)[0]
    test_only = entry.get('test_only', False)
    if test_only not in (True, False) or test_only > bool(
        entry.get('stage_one_from')
    ):
        raise SpecError(
            f'{where}: test_only must be True (with stage_one_from naming '
            f'the run whose checkpoint is tested) or False, got {test_only!r}'
        )
    return RunSpec(
        name=name,
        config=entry['config'],
        label=str(entry.get('label') or name),
        group=str(entry.get('group') or ''),
        cfg_options=options,
        test_options=test_options,
        seeds=_seeds(entry.get('seeds', seeds), where),
        epochs=_epochs(entry.get('epochs'), where),
        stage_one_from=entry.get('stage_one_from'),
        stage_one_seed=stage_one_seed,
        test_only=bool(test_only),
        baseline=list(baseline),
        note=str(entry.get('note') or ''),
    )


def _check_references(spec: ExperimentSpec) -> None:
    names = [r.name for r in spec.runs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise SpecError(f'spec {spec.name!r}: run names repeat: {repeated}')
    for run in spec.runs:
        for other in run.baseline + [run.stage_one_from]:
            if other is not None and other not in names:
                raise SpecError(
                    f'run {run.name!r} refers to {other!r}, which is not a '
                    f'run of this spec ({names})'
                )
        if run.name in run.baseline:
            raise SpecError(f'run {run.name!r} is its own baseline')
    # stage_one_from chains must end (no cycles)
    for run in spec.runs:
        seen = [run.name]
        current = run
        while current.stage_one_from is not None:
            if current.stage_one_from in seen:
                raise SpecError(
                    'stage_one_from forms a cycle: '
                    + ' -> '.join(seen + [current.stage_one_from])
                )
            seen.append(current.stage_one_from)
            current = spec.run(current.stage_one_from)
    for pair in spec.compare:
        for other in pair:
            if other not in names:
                raise SpecError(
                    f'compare names {other!r}, which is not a run of this '
                    f'spec ({names})'
                )


def spec_from_dict(
    data: Dict[str, Any], name: str, path: str = ''
) -> ExperimentSpec:
    """Validate the variables of a spec file (or of ``spec.json``)."""
    if not _NAME.match(name):
        raise SpecError(f'spec name {name!r}: letters, digits, _ . + - only')
    seeds = _seeds(data.get('seeds', [0]), f'spec {name!r}')
    runs = data.get('runs')
    if not isinstance(runs, (list, tuple)) or not runs:
        raise SpecError(
            f'spec {name!r} ({path or "?"}) needs runs = [dict(name=..., '
            'config=...), ...]'
        )
    compare = []
    for pair in data.get('compare') or []:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise SpecError(f'compare entries are (run, run) pairs: {pair!r}')
        compare.append((str(pair[0]), str(pair[1])))
    spec = ExperimentSpec(
        name=name,
        runs=[_run_from_dict(e, i, seeds) for i, e in enumerate(runs)],
        title=str(data.get('title') or name),
        description=str(data.get('description') or ''),
        seeds=seeds,
        compare=compare,
        path=path,
    )
    _check_references(spec)
    return spec


def load_spec(path: str) -> ExperimentSpec:
    """Read and validate ``experiments/<name>.py``; the name is the stem."""
    if not osp.isfile(path):
        raise SpecError(f'experiment spec {path!r} does not exist')
    data = {
        k: v for k, v in runpy.run_path(path).items() if not k.startswith('_')
    }
    name = osp.splitext(osp.basename(path))[0]
    return spec_from_dict(data, name, path)


def schedule_options(epochs: int) -> Dict[str, int]:
    """cfg_options that give a config ``epochs`` epochs: the loop's
    ``max_epochs`` and the cosine schedule's ``T_max`` and ``end`` (for
    configs whose ``param_scheduler`` is one dict, as the stage-two ones)."""
    return {
        'train_cfg.max_epochs': epochs,
        'param_scheduler.T_max': epochs,
        'param_scheduler.end': epochs,
    }


# test_options of a run: post-hoc logit adjustment with tau chosen on the
# validation split (tools/test.py validates first) and applied to test
# (LongTailAccuracy posthoc_tau='val'); reported as *_posthoc.
POSTHOC_TAU_FROM_VAL = {
    'val_evaluator.posthoc_tau': 'val',
    'test_evaluator.posthoc_tau': 'val',
}


def chosen_settings(
    spec_file: str,
    method: str,
    hooks: Optional[Dict[str, int]] = None,
    unless_defaults: bool = False,
) -> Dict[str, Any]:
    """The options tools/select_settings.py chose on the validation split.

    Read from ``results/<spec>/selection/<method>/selection.json`` beside
    the spec's ``experiments/`` folder (the committed record of the search;
    ``spec_file`` is the spec's ``__file__``); ``{}`` before the selection
    has run and, with ``unless_defaults``, where it kept the defaults.
    ``hooks`` maps a hook type to its index in ``custom_hooks``, so that a
    key naming a hook by type (``custom_hooks.GLAGDistillHook.beta_max``)
    becomes one ``--cfg-options`` reads (``custom_hooks.3.beta_max``).
    """
    name = osp.splitext(osp.basename(spec_file))[0]
    root = osp.dirname(osp.dirname(osp.abspath(spec_file)))
    path = osp.join(root, 'results', name, 'selection', method)
    path = osp.join(path, 'selection.json')
    if not osp.isfile(path):
        return {}
    with open(path) as f:
        record = json.load(f)
    chosen = record['chosen']
    if unless_defaults and chosen['index'] == record['noise']['defaults']:
        return {}
    out = {}
    for key, value in chosen['options'].items():
        for hook, index in (hooks or {}).items():
            old, new = f'custom_hooks.{hook}.', f'custom_hooks.{index}.'
            key = key.replace(old, new)
        out[key] = value
    return out
