"""Post-hoc logit adjustment, its tau chosen on the validation split.

The rule [prior: Menon et al. 2021, eq. (9); docs/method.md stage one, item 4]:
y_hat_i = argmax_j (log p_ij - tau * log pi_j), which equals
argmax_j (z_ij - tau * log pi_j) because log softmax(z_i) differs from z_i
by a constant per row. tau may be tuned on held-out data (Menon et al.,
sec. 4): :func:`select_posthoc_tau`.

The choice travels from the val metric to the test metric through the
MessageHub (``resumed=False``: checkpoints carry it in ``meta``, tagged with
the weights' iteration; :class:`glag_mm.engine.PosthocTauHook`). The same
code chooses, keeps and applies tau-normalisation's tau
(:mod:`.tau_norm`) and the temperature of temperature scaling
(:mod:`.temperature`): :data:`VAL_CHOSEN`.
"""

from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
from mmengine.logging import MessageHub, print_log

from .bootstrap import beyond_noise, paired_bootstrap
from .functional import group_results, per_class_accuracy

POSTHOC_TAU_KEY = 'glag_posthoc_tau'
TAU_NORM_KEY = 'glag_tau_norm'
TEMPERATURE_KEY = 'glag_temperature'
#: what validation may choose: LongTailAccuracy's option -> (MessageHub and
#: checkpoint ``meta`` key, the record's field holding the value); each is
#: reported as ``<option>_selected``.
VAL_CHOSEN = {
    'posthoc_tau': (POSTHOC_TAU_KEY, 'tau'),
    'tau_norm': (TAU_NORM_KEY, 'tau'),
    'temperature': (TEMPERATURE_KEY, 'temperature'),
}
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


def get_selected(name: str = 'posthoc_tau') -> Optional[dict]:
    """The last validation choice of an option of :data:`VAL_CHOSEN`
    (``dict(<field>=, iter=, epoch=)``), or None."""
    key = VAL_CHOSEN[name][0]
    record = MessageHub.get_current_instance().get_info(key)
    return None if record is None else dict(record)


def set_selected(name: str, record: Optional[dict]) -> None:
    """Publish (or with None, forget) an option's validation choice."""
    key, field = VAL_CHOSEN[name]
    if record is not None:
        record = {
            field: float(record[field]),
            'iter': int(record.get('iter', -1)),
            'epoch': int(record.get('epoch', -1)),
        }
    MessageHub.get_current_instance().update_info(key, record, resumed=False)


def get_selected_posthoc_tau() -> Optional[dict]:
    """``dict(tau=, iter=, epoch=)`` of the last selection, or None."""
    return get_selected('posthoc_tau')


def set_selected_posthoc_tau(record: Optional[dict]) -> None:
    """Publish (or with None, forget) the validation-selected tau."""
    set_selected('posthoc_tau', record)


class ValSelectedTau:
    """The ``'val'`` options of ``LongTailAccuracy`` (:data:`VAL_CHOSEN`):
    ``self.from_val`` names those chosen on validation; option ``name`` has
    its value (a number, None: off) in ``self.<name>`` and its grid in
    ``self.<name>_grid``. With ``self.noise_resamples`` > 0, the best value
    of an accuracy-chosen option replaces the grid's first (its default)
    only where a paired bootstrap over the validation images puts its gain
    beyond the noise (the 95 % interval above zero)."""

    _split_from_hook: Optional[str] = None
    from_val: frozenset = frozenset()
    noise_resamples: int = 0
    noise_seed: int = 0

    @property
    def posthoc_from_val(self) -> bool:
        return 'posthoc_tau' in self.from_val

    def set_evaluated_split(self, split: str) -> None:
        """``'val'``: this metric selects tau; ``'test'``: it applies it."""
        if split == 'test' and self.select_posthoc_tau:
            raise ValueError(
                "PosthocTauHook: test_evaluator's LongTailAccuracy has "
                'select_posthoc_tau=True, which would choose tau on the '
                'test labels; remove it (the hook makes the test metric '
                'apply the tau chosen on validation).'
            )
        self._split_from_hook = split

    def selects_tau(self) -> bool:
        """Whether this metric chooses (True) or applies (False) its
        ``'val'`` options."""
        if self.select_posthoc_tau is not None:
            return self.select_posthoc_tau
        if self._split_from_hook is None:
            raise ValueError(
                f"LongTailAccuracy({sorted(self.from_val)[0]}='val') does not "
                'know whether it evaluates the validation split (choose) or '
                "the test split (apply): add custom_hooks=[dict(type='Posthoc"
                "TauHook')] (glag_mm's tools/train.py and tools/test.py add "
                'it), or pass select_posthoc_tau=True / False.'
            )
        return self._split_from_hook == 'val'

    @staticmethod
    def applied_value(name: str) -> float:
        """The value of option ``name`` last chosen on validation."""
        record = get_selected(name)
        if record is None:
            raise ValueError(
                f"LongTailAccuracy({name}='val') on the test split: no "
                f'{VAL_CHOSEN[name][1]} has been chosen on the validation '
                'split. Validate first '
                f"(val_evaluator with {name}='val' and PosthocTauHook), test "
                'a checkpoint saved by such a run after its validation, or '
                f'give a number as {name}.'
            )
        return record[VAL_CHOSEN[name][1]]

    @classmethod
    def applied_tau(cls) -> float:
        """The post-hoc tau last chosen on validation."""
        return cls.applied_value('posthoc_tau')

    def values_of(self, name: str) -> Optional[Tuple[float, ...]]:
        """The values of option ``name`` :meth:`process` evaluates: the grid
        where this metric chooses, else the one value applied (None: off)."""
        if name not in self.from_val:
            value = getattr(self, name)
            return None if value is None else (value,)
        if self.selects_tau():
            return getattr(self, f'{name}_grid')
        return (self.applied_value(name),)

    def posthoc_taus(self) -> Optional[Tuple[float, ...]]:
        """The taus whose post-hoc labels :meth:`process` keeps."""
        return self.values_of('posthoc_tau')

    def chosen_index(
        self, name: str, choose: Callable[[], Tuple[int, torch.Tensor]]
    ) -> Tuple[int, Dict[str, float]]:
        """(index into :meth:`values_of`, ``{<name>_selected: value}`` where
        the option is ``'val'``). Where this metric chooses, ``choose()``
        gives (index, criterion values over the grid)."""
        if name not in self.from_val:
            return 0, {}
        if not self.selects_tau():
            return 0, {f'{name}_selected': self.applied_value(name)}
        grid = getattr(self, f'{name}_grid')
        index, values = choose()
        print_log(
            f'LongTailAccuracy: {name} {grid[index]:g} chosen on the '
            f'validation split (criterion {values[index]:.4f}; '
            f'{values.min():.4f} to {values.max():.4f} over {len(values)} '
            'values)',
            logger='current',
        )
        return index, {f'{name}_selected': grid[index]}

    def grid_results(
        self,
        name: str,
        grid_labels: torch.Tensor,
        target: torch.Tensor,
        groups: Dict[str, torch.Tensor],
        suffix: str,
    ) -> Tuple[Dict[str, float], torch.Tensor]:
        """The results (``suffix``) of the labels (G, N) at
        :meth:`values_of` ``name`` (with ``'val'``, ``<name>_selected`` too,
        chosen here by ``posthoc_tau_criterion`` where this metric chooses)
        and the (N,) labels at the value reported."""

        noise = {}

        def choose():
            index, values = select_posthoc_tau(
                grid_labels,
                target,
                getattr(self, f'{name}_grid'),
                len(groups['many']),
                self.posthoc_tau_criterion,
            )
            if self.noise_resamples and index != 0:
                noise.update(
                    self._against_the_first(name, grid_labels, index, target)
                )
                if not noise[f'{name}_beyond_noise']:
                    index = 0  # within the noise: the grid's first value
            return index, values

        index, metrics = self.chosen_index(name, choose)
        metrics.update(noise)
        labels = grid_labels[index]
        metrics.update(group_results(labels, target, groups, suffix)[0])
        return metrics, labels

    def _against_the_first(
        self, name: str, grid_labels: torch.Tensor, index: int, target
    ) -> Dict[str, float]:
        """The best value's paired-bootstrap gain over the grid's first
        (:func:`.bootstrap.paired_bootstrap`, ``posthoc_tau_criterion``),
        as ``<name>_gain`` / ``_gain_low`` / ``_gain_high`` (percent
        points), ``<name>_best_by_score`` and ``<name>_beyond_noise``."""
        comparison = paired_bootstrap(
            target.numpy(),
            grid_labels[index].numpy(),
            grid_labels[0].numpy(),
            self.posthoc_tau_criterion,
            self.noise_resamples,
            self.noise_seed,
        )
        low, high = comparison['interval']
        return {
            f'{name}_gain': comparison['difference'],
            f'{name}_gain_low': low,
            f'{name}_gain_high': high,
            f'{name}_best_by_score': getattr(self, f'{name}_grid')[index],
            f'{name}_beyond_noise': float(beyond_noise(comparison)),
        }

    def posthoc_results(
        self,
        grid_labels: torch.Tensor,
        target: torch.Tensor,
        groups: Dict[str, torch.Tensor],
    ) -> Tuple[Dict[str, float], torch.Tensor]:
        """:meth:`grid_results` of post-hoc tau (``*_posthoc``)."""
        return self.grid_results(
            'posthoc_tau', grid_labels, target, groups, '_posthoc'
        )
