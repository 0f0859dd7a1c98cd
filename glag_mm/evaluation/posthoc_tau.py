"""Post-hoc logit adjustment, its tau chosen on the validation split.

The rule [prior: Menon et al. 2021, eq. (9); METHOD.md stage one, item 4]:
y_hat_i = argmax_j (log p_ij - tau * log pi_j), which equals
argmax_j (z_ij - tau * log pi_j) because log softmax(z_i) differs from z_i
by a constant per row. tau may be tuned on held-out data (Menon et al.,
sec. 4): :func:`select_posthoc_tau`.

The choice travels from the val metric to the test metric through the
MessageHub (``resumed=False``: checkpoints carry it in ``meta``, tagged with
the weights' iteration; :class:`glag_mm.engine.PosthocTauHook`).
"""

from typing import Dict, Optional, Sequence, Tuple

import torch
from mmengine.logging import MessageHub, print_log

from .functional import group_results, per_class_accuracy

POSTHOC_TAU_KEY = 'glag_posthoc_tau'
POSTHOC_CRITERIA = ('class_mean', 'top1')
# 0.0, 0.1, ..., 2.0: covers Menon et al.'s tau = 1 and GraLoss's tau_max.
DEFAULT_TAU_GRID = tuple(round(0.1 * i, 1) for i in range(21))


def posthoc_labels_over_grid(
    scores: torch.Tensor, log_pi: torch.Tensor, taus: Sequence[float]
) -> torch.Tensor:
    """argmax_j (log p_ij - tau log pi_j) for softmax scores p (C,) or
    (N, C) and every tau: (G,) or (G, N)."""
    grid = torch.as_tensor(list(taus), dtype=torch.float64)
    log_p = scores.double().log()
    shift = grid.view(-1, *([1] * log_p.dim())) * log_pi.double()
    return (log_p.unsqueeze(0) - shift).argmax(dim=-1)


def select_posthoc_tau(
    grid_labels: torch.Tensor,
    target: torch.Tensor,
    taus: Sequence[float],
    num_classes: int,
    criterion: str = 'class_mean',
) -> Tuple[int, torch.Tensor]:
    """(index of the best tau, (G,) criterion values in percent).

    ``grid_labels`` (G, N): post-hoc labels per tau. ``'class_mean'`` suits
    the balanced test sets of long-tailed benchmarks; ``'top1'`` is the
    sample mean. Ties go to the smallest tau, then the first listed.
    """
    values = []
    for labels in grid_labels:
        if criterion == 'top1':
            values.append((labels == target).double().mean().item() * 100)
        else:
            acc = per_class_accuracy(labels, target, num_classes)
            values.append(acc.nanmean().item())
    values = torch.tensor(values, dtype=torch.float64)
    ties = [g for g in range(len(taus)) if values[g] == values.max()]
    return min(ties, key=lambda g: (taus[g], g)), values


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

    def posthoc_taus(self) -> Optional[Tuple[float, ...]]:
        """The taus whose post-hoc labels :meth:`process` keeps: the grid
        where this metric chooses, else the one tau applied (None: off)."""
        if not self.posthoc_from_val:
            return None if self.posthoc_tau is None else (self.posthoc_tau,)
        if self.selects_tau():
            return self.posthoc_tau_grid
        return (self.applied_tau(),)

    def posthoc_results(
        self,
        grid_labels: torch.Tensor,
        target: torch.Tensor,
        groups: Dict[str, torch.Tensor],
    ) -> Tuple[Dict[str, float], torch.Tensor]:
        """The ``*_posthoc`` results of the labels (G, N) at
        :meth:`posthoc_taus` (with ``'val'``, ``posthoc_tau_selected`` too,
        chosen here where this metric chooses) and the (N,) labels at the
        tau reported."""
        index, metrics = 0, {}
        if self.posthoc_from_val and self.selects_tau():
            index, values = select_posthoc_tau(
                grid_labels,
                target,
                self.posthoc_tau_grid,
                len(groups['many']),
                self.posthoc_tau_criterion,
            )
            tau = self.posthoc_tau_grid[index]
            print_log(
                f'LongTailAccuracy: post-hoc tau {tau:g} chosen on the '
                f'validation split ({self.posthoc_tau_criterion} accuracy '
                f'{values[index]:.2f}; {values.min():.2f} to '
                f'{values.max():.2f} over {len(values)} taus)',
                logger='current',
            )
            metrics['posthoc_tau_selected'] = tau
        elif self.posthoc_from_val:
            metrics['posthoc_tau_selected'] = self.applied_tau()
        labels = grid_labels[index]
        metrics.update(group_results(labels, target, groups, '_posthoc')[0])
        return metrics, labels
