"""Training-loop facts read from mmengine's MessageHub.

mmengine's default ``RuntimeInfoHook`` records ``iter`` and ``max_iters`` in
the current MessageHub, so losses and heads can follow the progress of the
stage without a hook of their own. Training class counts are published under
:data:`CLASS_COUNTS_KEY` by :class:`glag_mm.engine.ClassCountsHook`.
"""

from typing import List, Optional

from mmengine.logging import MessageHub

__all__ = [
    'CLASS_COUNTS_KEY',
    'training_progress',
    'get_train_class_counts',
    'set_train_class_counts',
]

CLASS_COUNTS_KEY = 'glag_train_class_counts'


def training_progress(default: float = 0.0) -> float:
    """Progress u = iter / (max_iters - 1) of the running stage, in [0, 1].

    u is 0 at the first iteration and exactly 1 at the last one. Outside a
    training loop (no ``max_iters`` recorded) ``default`` is returned.
    """
    hub = MessageHub.get_current_instance()
    max_iters = hub.get_info('max_iters')
    if not max_iters:
        return default
    it = hub.get_info('iter', 0)
    return min(max(it / max(max_iters - 1, 1), 0.0), 1.0)


def get_train_class_counts() -> Optional[List[int]]:
    """Per-class counts of the training set of the running stage, or None."""
    counts = MessageHub.get_current_instance().get_info(CLASS_COUNTS_KEY)
    return None if counts is None else [int(c) for c in counts]


def set_train_class_counts(counts) -> None:
    MessageHub.get_current_instance().update_info(
        CLASS_COUNTS_KEY, [int(c) for c in counts]
    )
