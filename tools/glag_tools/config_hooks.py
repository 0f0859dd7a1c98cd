"""What the tools add to a config: the default hooks (class counts, the
post-hoc tau hand-over, the loop that validates before saving), and the
error every config check raises.

This module is part of the library behind ``tools/`` (``glag_tools``).
"""

from typing import Any

from mmengine.config import Config


class ConfigError(ValueError):
    """A config or a flag the tools cannot run; the message says the fix."""


def _hook_type_name(hook: Any) -> str:
    kind = hook.get('type', '') if isinstance(hook, dict) else type(hook)
    name = kind if isinstance(kind, str) else getattr(kind, '__name__', '')
    return name.split('.')[-1]


def add_default_hook(cfg: Config, kind: str) -> None:
    """Append ``dict(type=kind)`` to ``custom_hooks`` unless it has one."""
    hooks = list(cfg.get('custom_hooks', None) or [])
    if not any(_hook_type_name(h) == kind for h in hooks):
        hooks.append(dict(type=kind))
    cfg.custom_hooks = hooks


def add_class_counts_hook(cfg: Config) -> None:
    """Append ``dict(type='ClassCountsHook')`` unless the config has one."""
    add_default_hook(cfg, 'ClassCountsHook')


def validation_options(node: Any) -> set:
    """The options of the LongTailAccuracy metrics of an evaluator (dict,
    list or ``metrics=``) that are chosen on validation (``'val'``):
    ``posthoc_tau``, ``tau_norm``, ``temperature``."""
    if isinstance(node, (list, tuple)):
        return set().union(*[validation_options(n) for n in node])
    if not isinstance(node, dict):
        return set()
    if _hook_type_name(node) == 'LongTailAccuracy':
        options = ('posthoc_tau', 'tau_norm', 'temperature')
        return {k for k in options if node.get(k) == 'val'}
    return validation_options(node.get('metrics'))


def uses_validation_tau(node: Any) -> bool:
    """Whether an evaluator (dict, list or ``metrics=``) has a
    LongTailAccuracy that PosthocTauHook serves: an option chosen on
    validation (:func:`validation_options`) or ``tau_norm`` at all (it
    needs the head's weight norms)."""
    if isinstance(node, (list, tuple)):
        return any(uses_validation_tau(n) for n in node)
    if not isinstance(node, dict):
        return False
    if _hook_type_name(node) == 'LongTailAccuracy':
        return node.get('tau_norm') is not None or bool(
            validation_options(node)
        )
    return uses_validation_tau(node.get('metrics'))


def add_posthoc_tau_hook(cfg: Config) -> None:
    """Append ``PosthocTauHook`` where an evaluator has posthoc_tau='val';
    there mmengine's epoch loop becomes ``ValidateBeforeSaveLoop``, so that
    each epoch's checkpoint holds what its own validation chose."""
    evaluators = [cfg.get(k) for k in ('val_evaluator', 'test_evaluator')]
    if uses_validation_tau(evaluators):
        add_default_hook(cfg, 'PosthocTauHook')
        loop = cfg.get('train_cfg', None)
        if isinstance(loop, dict) and (
            loop.get('by_epoch') or loop.get('type') == 'EpochBasedTrainLoop'
        ):
            loop = {k: v for k, v in loop.items() if k != 'by_epoch'}
            cfg.train_cfg = dict(loop, type='ValidateBeforeSaveLoop')


#: stage-two loop config -> whether it caches features by default
_STAGE_TWO_LOOPS = dict(train_cfg=True, val_cfg=True, test_cfg=False)


def stage_two_caches(cfg: Config) -> list:
    """The ``cache`` dicts of the config's stage-two loops that cache
    features (``cache=True`` becomes a dict, in the config), to set e.g.
    ``cache_dir`` or ``progress`` on every feature pass of a run."""
    caches = []
    for name, default in _STAGE_TWO_LOOPS.items():
        loop = cfg.get(name, None) or {}
        cache = loop.get('cache', default)
        if str(loop.get('type', '')).startswith('StageTwo') and cache:
            loop['cache'] = dict(cache) if isinstance(cache, dict) else {}
            caches.append(loop['cache'])
    return caches
