"""Group accuracies and prediction rules of the long-tail metric.

METHOD.md, "Evaluation conventions" [prior: Liu et al. 2019 (OLTR); Kang et
al. 2020 (decoupling)]: classes are grouped by the number of *training*
images n_c - many (n_c > 100), medium (20 <= n_c <= 100), few (n_c < 20) -
and the accuracy of a group is the mean of the per-class accuracies of its
classes. Two prediction rules can be reported beside the plain argmax:

* post-hoc logit adjustment [prior: Menon et al. 2021, eq. (9); METHOD.md
  stage one, item 4]: y_hat_i = argmax_j (log p_ij - tau * log pi_j), which
  equals argmax_j (z_ij - tau * log pi_j) because log softmax(z_i) differs
  from z_i by a constant per row; tau may be chosen on a validation split
  (:func:`select_posthoc_tau`);
* GALA's transductive prediction re-balancing [prior: GALA, arXiv
  2403.09036; METHOD.md, "Sibling losses"]: with p_i = softmax(z_i) and
  s_j = sum_i p_ij over the whole evaluation set,
  y_hat_i = argmax_j p_ij / s_j ** tau.
"""

import math
from typing import Dict, Sequence, Tuple

import torch

GROUPS = ('many', 'medium', 'few')
POSTHOC_CRITERIA = ('class_mean', 'top1')


def shot_groups(
    class_counts: Sequence[int],
    many_threshold: float = 100,
    few_threshold: float = 20,
) -> Dict[str, torch.Tensor]:
    """Class masks: many n_c > many_threshold, few n_c < few_threshold."""
    counts = torch.as_tensor(list(class_counts), dtype=torch.float64)
    many = counts > many_threshold
    few = counts < few_threshold
    return {'many': many, 'medium': ~(many | few), 'few': few}


def per_class_accuracy(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """acc_c = 100 #(pred == target == c) / #(target == c); NaN if none."""
    total = torch.bincount(target, minlength=num_classes).double()
    correct = torch.bincount(
        target[pred == target], minlength=num_classes
    ).double()
    acc = correct / total * 100
    acc[total == 0] = math.nan
    return acc


def group_accuracy(per_class: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean accuracy of the group's evaluated classes (NaN if none)."""
    values = per_class[mask]
    values = values[~values.isnan()]
    return values.mean().item() if values.numel() else math.nan


def group_results(
    pred: torch.Tensor,
    target: torch.Tensor,
    groups: Dict[str, torch.Tensor],
    suffix: str = '',
) -> Tuple[Dict[str, float], torch.Tensor]:
    """(``top1``, ``class_mean``, ``many``, ``medium``, ``few`` + suffix;
    per-class accuracies). An empty group is left out (no NaN)."""
    per_class = per_class_accuracy(pred, target, len(groups['many']))
    metrics = {f'top1{suffix}': (pred == target).double().mean().item() * 100}
    everything = torch.ones_like(groups['many'])
    metrics[f'class_mean{suffix}'] = group_accuracy(per_class, everything)
    for name in GROUPS:
        value = group_accuracy(per_class, groups[name])
        if not math.isnan(value):
            metrics[f'{name}{suffix}'] = value
    return metrics, per_class


def posthoc_adjusted_labels(
    scores: torch.Tensor, log_pi: torch.Tensor, tau: float
) -> torch.Tensor:
    """argmax_j (log p_ij - tau * log pi_j) for softmax scores p (N, C)."""
    return (scores.double().log() - tau * log_pi.double()).argmax(dim=-1)


def posthoc_labels_over_grid(
    scores: torch.Tensor, log_pi: torch.Tensor, taus: Sequence[float]
) -> torch.Tensor:
    """:func:`posthoc_adjusted_labels` for every tau: (G,) or (G, N)."""
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
    if criterion not in POSTHOC_CRITERIA:
        raise ValueError(
            f'posthoc_tau_criterion must be one of {POSTHOC_CRITERIA}, '
            f'got {criterion!r}'
        )
    values = []
    for labels in grid_labels:
        if criterion == 'top1':
            values.append((labels == target).double().mean().item() * 100)
        else:
            acc = per_class_accuracy(labels, target, num_classes)
            values.append(acc[~acc.isnan()].mean().item())
    values = torch.tensor(values, dtype=torch.float64)
    best = values.max()
    ties = [g for g in range(len(taus)) if values[g] == best]
    return min(ties, key=lambda g: (taus[g], g)), values


def rebalanced_labels(scores: torch.Tensor, tau: float) -> torch.Tensor:
    """argmax_j p_ij / s_j ** tau, s_j = sum_i p_ij over all N rows (GALA)."""
    scores = scores.double()
    column_sums = scores.sum(dim=0).clamp_min(torch.finfo(torch.float64).tiny)
    return (scores / column_sums**tau).argmax(dim=-1)
