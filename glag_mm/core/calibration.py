"""Tail / donor split, support sets and calibrated generation (AFG).

docs/method.md, stage two items 4 to 7. For an anchor x~ (a real, Tukey-
transformed feature) of a tail class c:

* support set S: the k classes with more training images than c whose means
  are nearest to x~ in L2 (k = 3 by default, the paper uses 2 or 3);
* donor weights w_i = (n_i / ||x~ - mu_i||) / sum_j (n_j / ||x~ - mu_j||)
  ("learn more from classes with more samples and closer" [paper, form
  ours]); ``'sqrt_count_distance'`` gives w_i proportional to
  sqrt(n_i) / ||x~ - mu_i|| (a largest donor that takes less of the
  weight [ours]); ``'uniform'`` gives w_i = 1 / k;
* calibrated mean mu' = (1 - s_c) x~ + s_c sum_i w_i mu_i, with the class's
  adaptive confidence s_c;
* calibrated covariance Sigma' = sum_i w_i Sigma_i + alpha I.

With uniform weights and s_c = k / (k + 1) the mean is Free-Lunch's
(sum_i mu_i + x~) / (k + 1) [prior]. Non-tail classes are sampled from their
own N(mu_c, Sigma_c). The draws themselves are made by
:func:`glag_mm.core.generator.generate_features`.
"""

import math
from typing import List, Optional, Tuple, Union

import torch
from torch import Tensor

from .checks import check_integer, check_number

WEIGHTINGS = ('count_distance', 'sqrt_count_distance', 'uniform')
GENERATION_MODES = ('balance', 'ratio')


def tail_classes(counts: Tensor, threshold: Union[int, float] = 100) -> Tensor:
    """(C,) bool: n_c < threshold, an int count (default 100, the
    many-shot threshold; a whole float >= 1 counts too) or a float in (0, 1)
    read as a fraction of n_max."""
    counts = torch.as_tensor(counts)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise TypeError(
            'tail threshold must be an int count or a float fraction of '
            f'n_max in (0, 1), got {threshold!r}'
        )
    if isinstance(threshold, float) and 0 < threshold < 1:
        limit = threshold * float(counts.max())
    elif threshold >= 1 and float(threshold).is_integer():
        limit = float(threshold)
    else:
        raise ValueError(
            'tail threshold must be a count >= 1 (e.g. 100) or a fraction '
            f'of n_max in (0, 1) (e.g. 0.1), got {threshold!r}'
        )
    return counts.to(torch.float64) < limit


def num_donors(counts: Tensor) -> Tensor:
    """(C,) number of classes with strictly more images than each class."""
    counts = torch.as_tensor(counts)
    srt = torch.sort(counts).values
    return counts.numel() - torch.searchsorted(srt, counts, right=True)


def _require_donors(counts: Tensor, needs: Tensor, k: int) -> None:
    """ValueError unless every class in the bool mask ``needs`` has k
    classes with more images (docs/method.md item 4)."""
    check_integer('k (support set size)', k, at_least=1)
    available = num_donors(counts)
    short = torch.nonzero(needs & (available < k)).flatten()
    if short.numel():
        c = int(short[0])
        raise ValueError(
            f'class {c} ({int(counts[c])} images) is a tail class with only '
            f'{int(available[c])} classes with more images, fewer than '
            f'k={k} donors ({short.numel()} such classes); lower num_donors '
            'or tail_threshold (a tail class needs k larger classes).'
        )


def support_sets(
    anchors: Tensor,
    anchor_classes: Tensor,
    means: Tensor,
    counts: Tensor,
    k: int = 3,
    weighting: str = 'count_distance',
    eps: float = 1e-12,
) -> Tuple[Tensor, Tensor]:
    """(M, k) donor ids per anchor, nearest first, and their (M, k) float32
    weights, rows summing to 1 (docs/method.md items 4 and 5).

    Donors of an anchor of class c: the k classes with more training images
    than c whose means mu (C, D) are nearest to the anchor in L2; weighting
    ``'count_distance'``, ``'sqrt_count_distance'`` or ``'uniform'``
    (module docstring; AFGHead checks it).
    """
    dev = means.device
    anchor_classes = anchor_classes.to(dev, torch.long)
    counts = torch.as_tensor(counts).to(dev)
    needs = torch.zeros(counts.numel(), dtype=torch.bool, device=dev)
    _require_donors(counts, needs.index_fill_(0, anchor_classes, True), k)
    x, means = anchors.to(dev, torch.float32), means.to(torch.float32)
    dist2 = x.square().sum(1, keepdim=True) - 2 * x @ means.T
    dist2 += means.square().sum(1)
    own = counts[anchor_classes]
    dist2.masked_fill_(counts[None, :] <= own[:, None], math.inf)
    donors = torch.topk(dist2, k, dim=1, largest=False).indices
    if weighting == 'uniform':
        return donors, torch.full(donors.shape, 1.0 / k, device=dev)
    dist = (x[:, None] - means[donors]).norm(dim=2)
    sizes = counts.to(torch.float32)[donors]
    if weighting == 'sqrt_count_distance':
        sizes = sizes.sqrt()
    raw = sizes / dist.clamp(min=eps)
    return donors, raw / raw.sum(1, keepdim=True)


def calibrated_mean(
    anchors: Tensor,
    donors: Tensor,
    weights: Tensor,
    means: Tensor,
    confidence: Tensor,
) -> Tensor:
    """(M, D) float32 mu' = (1 - s) x~ + s sum_i w_i mu_i (docs/method.md
    item 5), s (M,) the adaptive confidence of each anchor's class."""
    dev = means.device
    w = weights.to(dev, torch.float32)[:, None]
    mixed = torch.bmm(w, means[donors.to(dev)]).squeeze(1)
    s = confidence.to(dev, torch.float32).reshape(-1, 1)
    return (1 - s) * anchors.to(dev, torch.float32) + s * mixed


def generation_plan(
    counts: Tensor,
    batch_labels: Tensor,
    n_max: Optional[int] = None,
    mode: str = 'balance',
    ratio: float = 1.0,
    generator: Optional[torch.Generator] = None,
) -> Tensor:
    """Sorted class ids of the features to generate beside one batch.

    ``'balance'`` (instance-balanced batches, GLAG's setting [ours]): each
    batch of B carries e_c = B (n_max - n_c) / N features of class c in
    expectation, so over an epoch real + generated reaches n_max for every
    class (docs/method.md item 7); e_c is rounded at random (floor plus a
    Bernoulli draw), keeping the expectation exact. Under DDP pass the
    per-rank batch (N is the whole set). ``'ratio'`` (class-balanced real
    batches, e.g. cRT's sampler): ``ratio`` features per real sample, of its
    class. ``generator`` must be on ``batch_labels``' device.
    """
    if mode not in GENERATION_MODES:
        raise ValueError(
            f'unknown generation mode {mode!r}; choose one of '
            f'{GENERATION_MODES}'
        )
    labels = torch.as_tensor(batch_labels).reshape(-1)
    dev = labels.device
    if mode == 'ratio':
        ratio = check_number('ratio', ratio, at_least=0)
        ids = labels.long()
        expected = torch.full(ids.shape, ratio, device=dev).double()
    else:
        counts = torch.as_tensor(counts).to(dev, torch.float64)
        ids = torch.arange(counts.numel(), device=dev)
        target = float(counts.max()) if n_max is None else float(n_max)
        gap = (target - counts).clamp(min=0)
        expected = labels.numel() * gap / counts.sum()
    whole = expected.floor()
    extra = torch.rand(ids.numel(), generator=generator, device=dev)
    reps = (whole + (extra < expected - whole)).long()
    return torch.sort(torch.repeat_interleave(ids, reps)).values


def check_generation_setup(
    counts,
    tail_threshold: Union[int, float] = 100,
    k: int = 3,
    n_max: Optional[int] = None,
) -> List[str]:
    """Refuse, before the statistics pass, settings that cannot work.

    ValueError: a tail class without k larger classes, a non-tail class
    with under 2 images (no covariance), n_max below max n_c. Returns the
    warnings (no tail class at all).
    """
    counts = torch.as_tensor(list(counts), dtype=torch.long)
    tail = tail_classes(counts, tail_threshold)
    _require_donors(counts, tail, k)
    lonely = torch.nonzero(~tail & (counts < 2)).flatten()
    if lonely.numel():
        c = int(lonely[0])
        raise ValueError(
            f'class {c} has {int(counts[c])} training image(s) but is not a '
            'tail class, so it would be drawn from its own covariance, which '
            f'needs 2 images; raise tail_threshold above {int(counts[c])}.'
        )
    if n_max is not None and n_max < int(counts.max()):
        raise ValueError(
            f'n_max={n_max} is below the largest class ({int(counts.max())} '
            'images); set n_max to None (max n_c) or larger.'
        )
    if bool(tail.any()):
        return []
    return [
        f'no tail class: tail_threshold={tail_threshold!r} is at or '
        f'below every class count (smallest {int(counts.min())}), so no '
        'feature is calibrated from donors; raise tail_threshold to '
        'calibrate the rare classes.'
    ]


def smoothed_accuracy(
    record: Tensor, acc: Tensor, smoothing: float = 0.0
) -> Tensor:
    """a~_c = beta a~_c_prev + (1 - beta) acc_c, the signal of the s_c step
    smoothed over validations [ours; the paper's rule compares the raw
    accuracy].

    ``record`` (C,) holds a~_prev (NaN: none yet, so a~ = acc), ``acc`` (C,)
    this validation's accuracies (NaN: not measured, a~ = a~_prev), beta =
    ``smoothing`` in [0, 1): 0 gives acc itself. With the 'previous'
    reference the step then follows sign(a~_c - a~_c_prev) =
    sign(acc_c - a~_c_prev): this validation against the running average
    rather than the last, noisy, value.
    """
    beta = check_number('smoothing', smoothing, at_least=0, at_most=1)
    if beta == 1:
        raise ValueError('smoothing must be below 1 (1 never moves)')
    mixed = beta * record + (1 - beta) * acc
    mixed = torch.where(torch.isfinite(record), mixed, acc)
    return torch.where(torch.isfinite(acc), mixed, record)


def adaptive_confidence(
    confidence: Tensor,
    prev_acc: Tensor,
    acc: Tensor,
    tail: Optional[Tensor],
    step: float,
    bounds=(0.0, 1.0),
):
    """(s, acc record): s_c <- clip(s_c + eta sign(acc_c - acc_c_prev)).

    docs/method.md stage two item 6, tail classes only (all when ``tail`` is
    None). A NaN accuracy or reference leaves the score (a NaN accuracy the
    record too) unchanged.
    """
    seen = torch.isfinite(acc) & torch.isfinite(prev_acc)
    diff = torch.where(seen, acc - prev_acc, 0.0)
    moved = (confidence + step * torch.sign(diff)).clamp(*bounds)
    if tail is not None:
        moved = torch.where(tail.to(moved.device), moved, confidence)
    return moved, torch.where(torch.isfinite(acc), acc, prev_acc)
