"""Logit-adjusted cross-entropy, the functional core of GraLoss.

METHOD.md, stage one, item 1 [prior: Menon et al., "Long-tail learning via
logit adjustment", ICLR 2021, the logit-adjusted loss]:

    L(z, y) = -log softmax(z + tau * log pi)_y

with pi_c = n_c / N the training prior. tau = 0 is plain cross-entropy and
tau = 1 is Balanced Softmax (z + log n gives the same softmax, since log n
and log pi differ by a constant). Soft targets q (mixup, cutmix, label
smoothing) give L = -sum_c q_c log softmax(z + tau * log pi)_c.

The reduction follows mmpretrain's ``weight_reduce_loss`` exactly (sample
weights, ``avg_factor``, ``'none' | 'mean' | 'sum'``), re-implemented here so
that :mod:`glag_mm.core` stays free of OpenMMLab imports.
"""

from typing import Optional, Union

import torch
import torch.nn.functional as F

REDUCTIONS = ('none', 'mean', 'sum')


def weight_reduce(
    loss: torch.Tensor,
    weight: Optional[torch.Tensor] = None,
    reduction: str = 'mean',
    avg_factor: Optional[Union[int, float, torch.Tensor]] = None,
) -> torch.Tensor:
    """mmpretrain's ``weight_reduce_loss``: with ``avg_factor``, 'mean' is
    ``sum / avg_factor`` and 'sum' is refused."""
    if reduction not in REDUCTIONS:
        raise ValueError(
            f'reduction must be one of {REDUCTIONS}, got {reduction!r}'
        )
    if weight is not None:
        loss = loss * weight.float()
    if avg_factor is None:
        if reduction == 'mean':
            return loss.mean()
        if reduction == 'sum':
            return loss.sum()
        return loss
    if reduction == 'mean':
        return loss.sum() / avg_factor
    if reduction == 'sum':
        raise ValueError(
            'avg_factor can not be used with reduction="sum"; use '
            "reduction='mean' or drop avg_factor"
        )
    return loss


def cross_entropy_per_sample(
    logits: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    """(N,) cross-entropy of logits (N, C) for class indices (N,) or soft
    targets (N, C), mmpretrain's ``gt_score`` after batch augmentation."""
    if logits.ndim != 2:
        raise ValueError(
            f'logits must have shape (N, C), got {tuple(logits.shape)}'
        )
    if target.shape == logits.shape:
        log_p = F.log_softmax(logits, dim=-1)
        return -(target.to(log_p.dtype) * log_p).sum(dim=-1)
    if target.ndim == 1 and target.shape[0] == logits.shape[0]:
        if target.dtype.is_floating_point:
            raise TypeError(
                'hard labels must be integer class indices, got dtype '
                f'{target.dtype}; pass soft targets with shape (N, C)'
            )
        return F.cross_entropy(logits, target.long(), reduction='none')
    raise ValueError(
        f'target of shape {tuple(target.shape)} does not fit logits of '
        f'shape {tuple(logits.shape)}: give class indices (N,) or soft '
        'targets (N, C)'
    )


def adjust_logits(
    logits: torch.Tensor, log_prior: torch.Tensor, tau: float
) -> torch.Tensor:
    """z + tau * log pi, broadcast over the batch (a no-op at tau = 0)."""
    if tau == 0:
        return logits
    return logits + tau * log_prior.to(logits)


def logit_adjusted_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    log_prior: torch.Tensor,
    tau: float,
    weight: Optional[torch.Tensor] = None,
    reduction: str = 'mean',
    avg_factor: Optional[Union[int, float, torch.Tensor]] = None,
) -> torch.Tensor:
    """-sum_c q_c log softmax(z + tau log pi)_c, reduced by
    :func:`weight_reduce` (METHOD.md stage one, item 1)."""
    if log_prior.shape != logits.shape[-1:]:
        raise ValueError(
            f'log_prior has shape {tuple(log_prior.shape)} but the logits '
            f'have {logits.shape[-1]} classes'
        )
    loss = cross_entropy_per_sample(
        adjust_logits(logits, log_prior, tau), target
    )
    return weight_reduce(loss, weight, reduction, avg_factor)
