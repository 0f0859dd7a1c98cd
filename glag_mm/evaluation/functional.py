"""Group accuracies and GALA's prediction re-balancing.

docs/method.md, "Evaluation conventions" [prior: Liu et al. 2019 (OLTR);
Kang et al. 2020 (decoupling)]: classes are grouped by the number of
*training* images n_c - many (n_c > 100), medium (20 <= n_c <= 100), few
(n_c < 20) - and the accuracy of a group is the mean of the per-class
accuracies of its classes.

GALA's transductive prediction re-balancing [prior: GALA, arXiv
2403.09036; docs/method.md, "Sibling losses"]: with p_i = softmax(z_i) and
s_j = sum_i p_ij over the whole evaluation set,
y_hat_i = argmax_j p_ij / s_j ** tau. (Post-hoc logit adjustment:
:mod:`.posthoc_tau`.)
"""

import math
from typing import Dict, Sequence, Tuple

import torch


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


def group_results(
    pred: torch.Tensor,
    target: torch.Tensor,
    groups: Dict[str, torch.Tensor],
    suffix: str = '',
) -> Tuple[Dict[str, float], torch.Tensor]:
    """(``top1``, ``class_mean``, ``many``, ``medium``, ``few`` + suffix;
    per-class accuracies). A group's accuracy is the mean over its classes
    with samples; an empty group is left out (no NaN)."""
    per_class = per_class_accuracy(pred, target, len(groups['many']))
    metrics = {
        f'top1{suffix}': (pred == target).double().mean().item() * 100,
        f'class_mean{suffix}': per_class.nanmean().item(),
    }
    for name in ('many', 'medium', 'few'):
        value = per_class[groups[name]].nanmean().item()
        if not math.isnan(value):
            metrics[f'{name}{suffix}'] = value
    return metrics, per_class


def rebalanced_labels(scores: torch.Tensor, tau: float) -> torch.Tensor:
    """argmax_j p_ij / s_j ** tau, s_j = sum_i p_ij over all N rows (GALA)."""
    scores = scores.double()
    column_sums = scores.sum(dim=0).clamp_min(torch.finfo(torch.float64).tiny)
    return (scores / column_sums**tau).argmax(dim=-1)
