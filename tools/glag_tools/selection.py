"""Choosing settings on the validation split (``tools/select_settings.py``).

The pieces of the selection that need no subprocess: the settings from a
spec file and the command line, the options of a grid point, the check that
a config's validation set is not its test set, the final validation scores
of a finished run, and the search itself (grid or coordinate), which asks a
``selection`` object for the score of a point and trains nothing itself (the
noise of the scores: :mod:`.noise`).
"""

import itertools
import json
import math
import os
import os.path as osp
import runpy
from typing import Any, Dict, List, Optional, Sequence, Tuple

from mmengine.config import Config

from .config import ConfigError
from .stages import is_multi_stage

__all__ = [
    'CRITERIA',
    'load_settings',
    'resolve_key',
    'hook_type',
    'point_options',
    'dataset_sources',
    'check_heldout_validation',
    'final_validation',
    'search',
    'planned_runs',
]

#: short names of selection criteria -> the logged validation metric.
CRITERIA = {'top1': 'lt/top1', 'class_mean': 'lt/class_mean'}
SPEC_KEYS = ('grid', 'cfg_options', 'criterion', 'search', 'max_runs')
Axes = List[Tuple[str, list]]


def load_settings(
    spec_file: Optional[str] = None,
    grid: Optional[Dict[str, Any]] = None,
    cfg_options: Optional[Dict[str, Any]] = None,
    criterion: Optional[str] = None,
    search: Optional[str] = None,
    max_runs: Optional[int] = None,
) -> Dict[str, Any]:
    """The settings of a selection: a spec file's, overridden by arguments.

    A spec file is Python that may set ``grid`` (an ordered dict, or a list
    of pairs, axis -> values), ``cfg_options``, ``criterion``, ``search``
    and ``max_runs``. A ``grid`` argument's axes replace the spec's axes of
    the same name and add the others at the end; a single value is an axis
    of one value.

    Returns:
        dict of ``axes`` ([(name, values)]), ``cfg_options``, ``criterion``
        (a logged metric name), ``search`` and ``max_runs``.
    """
    spec = {k: None for k in SPEC_KEYS}
    if spec_file:
        values = runpy.run_path(spec_file)
        spec.update({k: values[k] for k in SPEC_KEYS if k in values})
    if search not in (None, 'grid', 'coordinate'):
        raise ConfigError(f"search must be 'grid' or 'coordinate': {search}")
    pairs = list(dict(spec['grid'] or {}).items())
    for key, values in (grid or {}).items():
        pairs = [(k, v) for k, v in pairs if k != key] + [(key, values)]
    axes = [
        (k, list(v) if isinstance(v, (list, tuple)) else [v]) for k, v in pairs
    ]
    if not axes or any(not values for _, values in axes):
        raise ConfigError('give a grid: --grid KEY=V1,V2 or --spec FILE')
    criterion = criterion or spec['criterion'] or 'lt/top1'
    return dict(
        axes=axes,
        cfg_options=dict(spec['cfg_options'] or {}, **(cfg_options or {})),
        criterion=CRITERIA.get(criterion, criterion),
        search=search or spec['search'] or 'grid',
        max_runs=max_runs or spec['max_runs'],
    )


def resolve_key(cfg, key: str) -> str:
    """``a.HookType.b`` -> ``a.<index>.b`` (list entries named by type).

    Where the key passes through a list (``custom_hooks``), a part that is
    not a number names the one entry of that ``type`` (registry scope
    ignored), so options survive reordering of the config's hooks.
    """
    node, parts = (cfg.to_dict() if isinstance(cfg, Config) else cfg), []
    for part in key.split('.'):
        if isinstance(node, (list, tuple)) and not part.isdigit():
            found = [i for i, e in enumerate(node) if hook_type(e) == part]
            if len(found) != 1:
                names = [hook_type(e) for e in node]
                raise ConfigError(
                    f'{key}: the list holds {names}, so {part!r} names '
                    f'{len(found)} entries; use an index or one type.'
                )
            part = str(found[0])
        parts.append(part)
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, (list, tuple)) and int(part) < len(node):
            node = node[int(part)]
        else:
            node = None
    return '.'.join(parts)


def hook_type(entry) -> str:
    """The bare ``type`` name of a config entry ('' if it has none)."""
    kind = entry.get('type', '') if isinstance(entry, dict) else ''
    return str(getattr(kind, '__name__', kind)).split('.')[-1]


def point_options(axes: Axes, choice: Sequence[int]) -> Dict[str, Any]:
    """The config options of one point (choice: a value index per axis).

    A value that is a dict is a set of options changed together (e.g.
    ``train_cfg.max_epochs`` with the scheduler's ``T_max`` and ``end``);
    any other value sets the axis's own key.
    """
    options = {}
    for (name, values), index in zip(axes, choice):
        value = values[index]
        options.update(value if isinstance(value, dict) else {name: value})
    return options


def dataset_sources(dataset: Any) -> List[tuple]:
    """The files a dataset config reads, one tuple per leaf dataset.

    Wrappers (``dataset=`` / ``datasets=``, e.g. ``LongTailDataset``) are
    looked through: a subset of the test files still reads them. A leaf
    with an ``ann_file`` is its absolute ``ann_file`` and ``data_prefix``;
    one without (CIFAR, MNIST, Fashion-MNIST, which pick their files by
    ``split`` or ``test_mode``) is its type, ``data_root``, ``data_prefix``
    and ``'test'`` where ``split='test'`` or ``test_mode=True`` (either
    selects the test files in one of those families), else its ``split``.
    """
    if not isinstance(dataset, dict):
        return []
    inner = dataset.get('dataset') or dataset.get('datasets')
    if inner is not None:
        inner = inner if isinstance(inner, (list, tuple)) else [inner]
        return [s for d in inner for s in dataset_sources(d)]
    root = osp.abspath(str(dataset.get('data_root', '')))
    prefix = str(dataset.get('data_prefix', ''))
    if dataset.get('ann_file'):
        ann = osp.normpath(osp.join(root, str(dataset['ann_file'])))
        return [('ann_file', ann, prefix)]
    split = dataset.get('split')
    if split == 'test' or dataset.get('test_mode'):
        split = 'test'
    return [(hook_type(dataset), root, prefix, split)]


def check_heldout_validation(cfg: Config, path: str) -> None:
    """Refuse a config that would choose on the test split (or cannot).

    Raises:
        ConfigError: the config names stages, has no validation, or a leaf
            dataset of its val_dataloader is one of its test_dataloader's
            (:func:`dataset_sources`).
    """
    if is_multi_stage(cfg):
        raise ConfigError(
            f'{path} names stages; pass the stage-two config with '
            '--cfg-options stage_one_checkpoint=PATH.'
        )
    val = cfg.get('val_dataloader') or {}
    if not val.get('dataset') or cfg.get('val_cfg') is None:
        raise ConfigError(
            f'{path} has no validation (val_dataloader / val_cfg): add a '
            "held-out split, e.g. LongTailDataset(split='heldout')."
        )
    test = (cfg.get('test_dataloader') or {}).get('dataset')
    shared = set(dataset_sources(val['dataset'])) & set(dataset_sources(test))
    if shared:
        raise ConfigError(
            f'{path}: val_dataloader reads the test split ({sorted(shared)});'
            ' choosing settings on it would tune on test. Point '
            'val_dataloader at a held-out split (e.g. '
            "LongTailDataset(split='heldout') or the benchmark's val list)."
        )


def final_validation(work_dir: str, criterion: str) -> Dict[str, Any]:
    """The scalars of the last validation in a run's newest log.

    mmengine's LoggerHook writes one json line per logged step to
    ``<work_dir>/<timestamp>/vis_data/scalars.json``; validation lines are
    those without ``iter``, and their ``step`` is the epoch (iteration for
    iteration-based loops) that was validated.
    """
    logs = sorted(
        osp.join(work_dir, d, 'vis_data', 'scalars.json')
        for d in os.listdir(work_dir)
        if osp.isfile(osp.join(work_dir, d, 'vis_data', 'scalars.json'))
    )
    entries = []
    if logs:
        with open(logs[-1]) as f:
            entries = [json.loads(line) for line in f if line.strip()]
    vals = [e for e in entries if criterion in e and 'iter' not in e]
    if not vals:
        raise ConfigError(
            f'no validation with {criterion!r} in {work_dir} (its '
            'scalars.json): check the criterion against the val_evaluator '
            'and that the visualizer has a LocalVisBackend.'
        )
    drop = ('data_time', 'time')
    return {k: v for k, v in vals[-1].items() if k not in drop}


def search(selection) -> Tuple[int, ...]:
    """The chosen point: the best validation score, the first on ties.

    ``selection.settings`` holds ``axes`` and ``search``;
    ``selection.score(choice)`` returns the criterion of a point (a value
    index per axis), training it on first use. ``'grid'`` scores the
    product of the axes in order; ``'coordinate'`` starts at every axis's
    first value and, axis after axis, keeps the axis at its best value
    given the earlier ones (a value must beat the current one to replace
    it).
    """
    axes = selection.settings['axes']
    if selection.settings['search'] == 'grid':
        best = None
        for choice in itertools.product(*[range(len(v)) for _, v in axes]):
            score = selection.score(choice)  # trains in grid order
            if best is None or score > selection.score(best):
                best = choice
        return best
    current = [0] * len(axes)
    selection.score(current)
    for a, (_, values) in enumerate(axes):
        best = current
        for i in range(1, len(values)):
            candidate = current[:a] + [i] + current[a + 1 :]
            if selection.score(candidate) > selection.score(best):
                best = candidate
        current = best
    return tuple(current)


def planned_runs(settings: Dict[str, Any]) -> int:
    """Training runs a search needs: prod k_i (grid), 1 + sum(k_i - 1)."""
    sizes = [len(values) for _, values in settings['axes']]
    if settings['search'] == 'grid':
        return math.prod(sizes)
    return 1 + sum(k - 1 for k in sizes)
