"""The noise of a validation score (``tools/select_settings.py``).

A point of a selection is compared with the defaults on the same validation
images: the per-image labels its final validation wrote
(``LongTailAccuracy(samples_file=...)``), a paired bootstrap of the
difference of the criterion, and the rule that a point replaces the
defaults only where the whole 95 % interval of its difference lies above
zero.
"""

import inspect
import json
from typing import Any, List, Tuple

from mmengine.config import Config
from mmpretrain import registry

from glag_mm.evaluation.bootstrap import (
    beyond_noise,
    bootstrap_indices,
    paired_bootstrap,
    sample_statistic,
)

from .config import ConfigError
from .selection import hook_type, point_options, resolve_key

__all__ = [
    'criterion_labels',
    'samples_metric',
    'bootstrap_indices',
    'sample_statistic',
    'paired_bootstrap',
    'beyond_noise',
    'labels_of',
    'apply_noise_rule',
    'noise_sentence',
    'defaults_differ',
]


#: statistics whose noise the bootstrap measures (from per-image labels).
NOISE_STATISTICS = ('class_mean', 'top1')


def criterion_labels(criterion: str) -> Tuple[str, str]:
    """(statistic, samples key) of a criterion: ``lt/top1`` ->
    ``('top1', 'pred')``, ``lt/class_mean_posthoc`` -> ``('class_mean',
    'pred_posthoc')`` (keys of ``LongTailAccuracy``'s ``samples_file``).

    Raises:
        ConfigError: a criterion that is not top1 / class_mean (with a
            ``_posthoc`` or ``_rebalanced`` suffix or none).
    """
    name = criterion.split('/')[-1]
    for statistic in NOISE_STATISTICS:
        suffix = name[len(statistic) :]
        if name.startswith(statistic) and suffix in (
            '',
            '_posthoc',
            '_rebalanced',
        ):
            return statistic, 'pred' + suffix
    raise ConfigError(
        f'criterion {criterion!r}: the selection measures the noise of '
        'top1 or class_mean (optionally _posthoc or _rebalanced), e.g. '
        "'lt/top1' or 'lt/class_mean_posthoc'."
    )


def samples_metric(cfg: Config, path: str) -> int:
    """Index of the one LongTailAccuracy of ``val_evaluator`` (0 for a
    single dict), whose ``samples_file`` gives the per-image labels.

    Raises:
        ConfigError: none, or several.
    """
    evaluator = cfg.get('val_evaluator')
    entries = (
        evaluator if isinstance(evaluator, (list, tuple)) else [evaluator]
    )
    found = [
        i for i, e in enumerate(entries) if hook_type(e) == 'LongTailAccuracy'
    ]
    if len(found) != 1:
        raise ConfigError(
            f'{path}: val_evaluator needs exactly one LongTailAccuracy (it '
            f'holds {[hook_type(e) for e in entries]}); the selection reads '
            "its per-image labels for the scores' uncertainty."
        )
    return found[0]


def labels_of(point: dict, criterion: str):
    """(gt, labels of the criterion) of a point's final validation, checked
    against its logged score."""
    statistic, key = criterion_labels(criterion)
    with open(point['samples']) as f:
        samples = json.load(f)
    if key not in samples:
        raise ConfigError(
            f'{point["samples"]} has no {key!r} labels for {criterion}: '
            'give the val_evaluator the option the criterion needs.'
        )
    everything = [list(range(len(samples['gt'])))]
    score = sample_statistic(
        samples['gt'], samples[key], statistic, everything
    )
    if abs(float(score[0]) - point['val'][criterion]) > 1e-3:
        raise ConfigError(
            f'{point["samples"]} gives {criterion} {float(score[0]):.4f}, '
            f'the log {point["val"][criterion]:.4f}: the labels are not '
            "those of the point's final validation."
        )
    return samples['gt'], samples[key]


def apply_noise_rule(selection, best, resamples: int, seed: int):
    """(chosen point, noise record): the best point if it beats the
    defaults (every axis's first value) beyond the noise, else the defaults.
    Each point gets ``noise``: its paired-bootstrap difference to the
    defaults and whether it lies beyond the noise."""
    criterion = selection.settings['criterion']
    reference = (0,) * len(selection.settings['axes'])
    gt, default = labels_of(selection.points[reference], criterion)
    for point in selection.points.values():
        truth, labels = labels_of(point, criterion)
        if truth != gt:
            raise ConfigError(
                f'point {point["index"]} was validated on other images than '
                'the defaults; the comparison needs the same images.'
            )
        comparison = paired_bootstrap(
            gt,
            labels,
            default,
            criterion_labels(criterion)[0],
            resamples,
            seed,
        )
        point['noise'] = dict(
            comparison, beyond_noise=beyond_noise(comparison)
        )
    beats = selection.points[tuple(best)]['noise']['beyond_noise']
    points = sorted(selection.points.values(), key=lambda p: p['index'])
    record = dict(
        method='paired bootstrap over the validation images, 95 % '
        'percentile interval of the difference to the defaults',
        statistic=criterion_labels(criterion)[0],
        images=len(gt),
        resamples=resamples,
        seed=seed,
        defaults=selection.points[reference]['index'],
        best_by_score=selection.points[tuple(best)]['index'],
        within_noise=[
            p['index']
            for p in points
            if p is not selection.points[reference]
            and not p['noise']['beyond_noise']
        ],
        kept_defaults=not beats and tuple(best) != reference,
    )
    return (tuple(best) if beats else reference), record


def noise_sentence(noise: dict) -> str:
    """The noise rule's outcome in one paragraph of the markdown record."""
    text = (
        f'Noise: paired bootstrap of {noise["statistic"]} over the '
        f'{noise["images"]} validation images ({noise["resamples"]} draws, '
        f'seed {noise["seed"]}) against the defaults (point '
        f'{noise["defaults"]}). '
    )
    if noise['kept_defaults']:
        return text + (
            f'The best score (point {noise["best_by_score"]}) is within the '
            'noise: the defaults are kept.'
        )
    if noise['best_by_score'] == noise['defaults']:
        return text + 'The defaults score best.'
    return text + (
        f'Point {noise["best_by_score"]} beats the defaults beyond the noise.'
    )


def _default_argument(entry: dict, name: str) -> Any:
    """The default of argument ``name`` of the class a config entry builds
    (its ``type``, looked up in mmpretrain's registries), else None."""
    kind = entry.get('type')
    if isinstance(kind, str):
        found = None
        for table in ('MODELS', 'HOOKS', 'METRICS', 'DATASETS'):
            found = found or getattr(registry, table).get(kind)
        kind = found
    try:
        parameter = inspect.signature(kind).parameters.get(name)
    except (TypeError, ValueError):
        return None
    empty = parameter is None or parameter.default is inspect.Parameter.empty
    return None if empty else parameter.default


def config_value(cfg: Config, key: str) -> Any:
    """The value at a dotted key (list entries by index or type, as
    :func:`resolve_key`); an argument the config leaves out has its class's
    default."""
    node, parent = cfg.to_dict(), None
    parts = resolve_key(cfg, key).split('.')
    for part in parts:
        parent = node
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit():
            node = node[int(part)] if int(part) < len(node) else None
        else:
            node = None
    if node is None and isinstance(parent, dict) and 'type' in parent:
        return _default_argument(parent, parts[-1])
    return node


def defaults_differ(cfg: Config, axes) -> List[str]:
    """The options of the defaults point (every axis's first value) that
    differ from ``cfg``'s own (``cfg``: the config with the selection's
    cfg_options, before any point's options): the rule keeps those
    defaults, so they should be the config's."""
    options = point_options(axes, [0] * len(axes))
    return [k for k, v in options.items() if config_value(cfg, k) != v]
