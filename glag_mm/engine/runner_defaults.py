"""What a Runner built by another tool needs from glag_mm, added on import.

So that the one-line swap works under mmpretrain's own tools and ``mim
train``, :func:`install` wraps ``Runner.register_hooks`` (adds
:class:`ClassCountsHook` where a glag_mm part reads class counts and none is
configured, and :class:`WorkDirLockHook` where the run holds its work_dir)
and ``Runner.from_cfg`` (names glag_mm's tools for a multi-stage config;
takes the work_dir's lock before the Runner writes). Only in the range
verified (:data:`glag_mm.compat.RUNNER_WRAPPERS`, mmengine >= 0.8.0, <=
0.10.7); why wrappers: docs/architecture.md, "Patches of the pinned stack".
"""

import functools
import logging
import os.path as osp

from mmengine.runner import Runner
from mmpretrain.registry import METRICS

from .. import work_dir_lock
from ..compat import RUNNER_WRAPPERS
from .class_counts_hook import ClassCountsHook

_MARK = '_glag_mm_wrapped'

logger = logging.getLogger(__name__)


def _is_glag_mm(obj) -> bool:
    return type(obj).__module__.split('.')[0] == 'glag_mm'


def _metric_types(evaluator) -> list:
    if isinstance(evaluator, dict):
        evaluator = evaluator.get('metrics', evaluator)
    metrics = (
        evaluator if isinstance(evaluator, (list, tuple)) else [evaluator]
    )
    return [m.get('type') for m in metrics if isinstance(m, dict)]


def needs_class_counts(runner) -> bool:
    """Whether a glag_mm model part or metric of the runner reads counts."""
    for module in runner.model.modules():
        if _is_glag_mm(module) and (
            callable(getattr(module, 'init_class_counts', None))
            or type(module).__name__ == 'AFGHead'
        ):
            return True
    cfg = getattr(runner, 'cfg', None) or {}
    for key in ('val_evaluator', 'test_evaluator'):
        for kind in _metric_types(cfg.get(key, None)):
            cls = METRICS.get(kind) if isinstance(kind, str) else kind
            if cls is not None and cls.__module__.startswith('glag_mm.'):
                return True
    return False


def _register_hooks(original):
    @functools.wraps(original)
    def register_hooks(self, default_hooks=None, custom_hooks=None):
        original(self, default_hooks, custom_hooks)
        if osp.abspath(self.work_dir) in work_dir_lock.HELD:
            self.register_hook(work_dir_lock.WorkDirLockHook())
        present = any(isinstance(h, ClassCountsHook) for h in self.hooks)
        if not present and needs_class_counts(self):
            self.register_hook(ClassCountsHook())
            self.logger.info(
                'glag_mm: added ClassCountsHook (the model reads the '
                'training class counts)'
            )

    setattr(register_hooks, _MARK, True)
    return register_hooks


def _from_cfg(original):
    @functools.wraps(original)
    def from_cfg(cls, cfg):
        if cfg.get('stages', None) is not None and 'model' not in cfg:
            names = [s.get('name') for s in cfg['stages']]
            raise ValueError(
                f'this is a glag_mm multi-stage config (stages {names}); '
                "mmpretrain's tools take one config. Run it with glag_mm's "
                'tools/train.py (python tools/train.py CONFIG; tools/test.py '
                "to test), or give this tool one stage's config (the "
                "'config' of an entry of stages)."
            )
        work_dir_lock.acquire(cfg.get('work_dir', None))
        return original.__func__(cls, cfg)

    setattr(from_cfg, _MARK, True)
    return classmethod(from_cfg)


def install() -> bool:
    """Wrap ``Runner.register_hooks`` and ``Runner.from_cfg`` once, where
    the installed mmengine is in :data:`RUNNER_WRAPPERS`; True if the
    Runner is wrapped (now or before)."""
    if not RUNNER_WRAPPERS.applies():
        logger.warning(
            'glag_mm: mmengine %s is outside %s, where Runners built by '
            "other tools (mmpretrain's tools/train.py, mim train) get "
            "glag_mm's defaults; add dict(type='ClassCountsHook') to "
            'custom_hooks of configs that read class counts, and run one '
            'training per work_dir (no lock is taken)',
            RUNNER_WRAPPERS.installed(),
            RUNNER_WRAPPERS,
        )
        return False
    if not getattr(Runner.register_hooks, _MARK, False):
        Runner.register_hooks = _register_hooks(Runner.register_hooks)
    if not getattr(Runner.from_cfg, _MARK, False):
        Runner.from_cfg = _from_cfg(Runner.__dict__['from_cfg'])
    return True
