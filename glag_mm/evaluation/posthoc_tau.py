"""The post-hoc tau chosen on the validation split [prior: Menon et al.
2021, sec. 4, tune tau on held-out data], and its run-time state.

The choice travels from the ``val_evaluator``'s metric to the
``test_evaluator``'s through the MessageHub (published on every rank by
:class:`glag_mm.engine.PosthocTauHook`) with ``resumed=False``: checkpoints
carry it in ``meta``, tagged with the weights' iteration, so a stale copy in
a saved message hub never wins on resume.
"""

from typing import Any, Dict, List, Optional, Tuple

import torch
from mmengine.logging import MessageHub, print_log

from .functional import group_results, select_posthoc_tau

POSTHOC_TAU_KEY = 'glag_posthoc_tau'
# 0.0, 0.1, ..., 2.0: covers Menon et al.'s tau = 1 and GraLoss's tau_max.
DEFAULT_TAU_GRID = tuple(round(0.1 * i, 1) for i in range(21))


def check_tau_grid(grid: Any) -> Tuple[float, ...]:
    """The grid as a tuple of floats, or a ValueError that shows one."""
    values = tuple(grid) if isinstance(grid, (list, tuple)) else None
    if not values or any(
        isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0
        for v in values
    ):
        raise ValueError(
            'LongTailAccuracy: posthoc_tau_grid must be a non-empty list of '
            f'taus >= 0, e.g. [0.0, 0.5, 1.0, 1.5], got {grid!r}'
        )
    return tuple(float(v) for v in values)


def get_selected_posthoc_tau() -> Optional[dict]:
    """``dict(tau=, iter=, epoch=)`` of the last selection, or None."""
    record = MessageHub.get_current_instance().get_info(POSTHOC_TAU_KEY)
    return None if record is None else dict(record)


def set_selected_posthoc_tau(record: Optional[dict]) -> None:
    """Publish (or with None, forget) the validation-selected tau."""
    if record is not None:
        record = dict(
            tau=float(record['tau']),
            iter=int(record.get('iter', -1)),
            epoch=int(record.get('epoch', -1)),
        )
    MessageHub.get_current_instance().update_info(
        POSTHOC_TAU_KEY, record, resumed=False
    )


class ValSelectedTau:
    """The ``posthoc_tau='val'`` part of ``LongTailAccuracy``."""

    _split_from_hook: Optional[str] = None

    def set_evaluated_split(self, split: str) -> None:
        """``'val'``: this metric selects tau; ``'test'``: it applies it."""
        if split not in ('val', 'test'):
            raise ValueError(f"split must be 'val' or 'test', got {split!r}")
        self._split_from_hook = split

    def selects_tau(self) -> bool:
        """Whether this metric chooses tau (True) or applies it (False)."""
        if self.select_posthoc_tau is not None:
            return self.select_posthoc_tau
        if self._split_from_hook is None:
            raise ValueError(
                "LongTailAccuracy(posthoc_tau='val') does not know whether it "
                'evaluates the validation split (choose tau) or the test '
                "split (apply it): add custom_hooks=[dict(type='PosthocTauHook"
                "')] (glag_mm's tools/train.py and tools/test.py add it), or "
                'pass select_posthoc_tau=True / False.'
            )
        return self._split_from_hook == 'val'

    @staticmethod
    def applied_tau() -> float:
        """The tau last chosen on validation (a clear error if none was)."""
        record = get_selected_posthoc_tau()
        if record is None:
            raise ValueError(
                "LongTailAccuracy(posthoc_tau='val') on the test split: no "
                'tau has been chosen on the validation split. Validate first '
                "(val_evaluator with posthoc_tau='val' and PosthocTauHook), "
                'test a checkpoint saved by such a run after its validation, '
                'or give a number as posthoc_tau.'
            )
        return record['tau']

    def select_tau(
        self,
        results: List[dict],
        target: torch.Tensor,
        groups: Dict[str, torch.Tensor],
    ) -> Dict[str, float]:
        """``posthoc_tau_selected`` and the ``*_posthoc`` results at it."""
        grid_labels = torch.stack([r['pred_grid'] for r in results], dim=1)
        grid_labels = grid_labels.long()
        index, values = select_posthoc_tau(
            grid_labels,
            target,
            self.posthoc_tau_grid,
            len(groups['many']),
            self.posthoc_tau_criterion,
        )
        tau = self.posthoc_tau_grid[index]
        metrics = {'posthoc_tau_selected': tau}
        metrics.update(
            group_results(grid_labels[index], target, groups, '_posthoc')[0]
        )
        print_log(
            f'LongTailAccuracy: post-hoc tau {tau:g} chosen on the validation '
            f'split ({self.posthoc_tau_criterion} accuracy '
            f'{values[index]:.2f}; {values.min():.2f} to {values.max():.2f} '
            f'over {len(values)} taus)',
            logger='current',
        )
        return metrics
