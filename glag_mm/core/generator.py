"""The feature generator of stage two (docs/method.md items 5 to 7).

:func:`generate_features` draws a tail class from
N((1 - s_c) x~ + s_c sum_i w_i mu_i, sum_i w_i Sigma_i + alpha I) around an
anchor x~ of its real rows, any other class from N(mu_c, Sigma_c), in one
factorised noise pass (no D x D matrix, O(k max(exact_rows, rank) D) per
draw). Draws are seeded from (seed, iteration, rank)
(:func:`seeded_generators`): a resumed run draws what the uninterrupted run
drew, and ranks draw differently.
"""

from typing import Optional, Tuple

import torch
from torch import Tensor

from .calibration import calibrated_mean
from .class_statistics import ClassStatistics

Generators = Tuple[Optional[torch.Generator], Optional[torch.Generator]]


def seeded_generators(
    seed: int, iteration: int, rank: int = 0, device=None
) -> Tuple[torch.Generator, torch.Generator]:
    """Host and device generators seeded from (seed, iteration, rank)."""
    mixed = (int(seed) * 1_000_003 + int(iteration)) * 1_009 + int(rank)
    mixed %= 2**62
    host = torch.Generator().manual_seed(mixed)
    dev = torch.Generator(device=device or 'cpu').manual_seed(mixed + 1)
    return host, dev


def anchor_positions(
    classes: Tensor, sizes: Tensor, generator: Optional[torch.Generator]
) -> Tensor:
    """(M,) row j in [0, n_c) of its class's anchors for each request.

    The t-th of the g_c requests for class c (``classes``: (M,) host ids,
    sorted) takes row floor((t + u_c) n_c / g_c), u_c ~ U[0, 1) once per
    class and call: a stratified subset when g_c <= n_c, else every row as
    evenly as possible. ``sizes``: (C,) n_c.
    """
    per_class = torch.bincount(classes, minlength=sizes.numel())
    first = torch.cumsum(per_class, 0) - per_class
    t = torch.arange(classes.numel()) - first[classes]
    u = torch.rand(sizes.numel(), generator=generator)
    n = sizes[classes]
    pos = ((t + u[classes]) * n / per_class[classes]).floor().long()
    return torch.minimum(pos, n - 1)


def generate_features(
    stats: ClassStatistics,
    confidence: Tensor,
    classes: Tensor,
    alpha: float = 0.0,
    generators: Generators = (None, None),
) -> Tuple[Tensor, Tensor]:
    """(M, D) float32 features (Tukey space) and (M,) labels of the
    requested ``classes`` ((M,) host ids sorted by class, e.g. from
    :func:`~glag_mm.core.calibration.generation_plan`), on the statistics'
    device. ``confidence``: (C,) s_c; ``alpha`` >= 0 (AFGHead checks it):
    isotropic dispersion added to calibrated covariances; ``generators``:
    (host, device), e.g. :func:`seeded_generators`: the host one picks
    anchors, the device one draws the noise.
    """
    host_gen, dev_gen = generators
    classes = torch.as_tensor(classes).reshape(-1).to('cpu', torch.long)
    num, dev = classes.numel(), stats.device
    is_tail = stats.tail[classes]
    pos_tail = torch.nonzero(is_tail).flatten()
    pos_own = torch.nonzero(~is_tail).flatten()
    out = torch.empty(num, stats.dim, device=dev)
    samples, donors, weights = [], [], []
    extra = torch.zeros(num)
    if pos_tail.numel():
        cls_t = classes[pos_tail]
        j = anchor_positions(cls_t, stats.anchor_size, host_gen)
        table = stats.anchor_base[cls_t] + j
        d, w = stats.donors[table], stats.donor_weights[table]
        x = stats.anchor_features(stats.anchor_start[cls_t] + j, cls_t)
        s = torch.as_tensor(confidence).to(dev)[cls_t.to(dev)]
        out[pos_tail.to(dev)] = calibrated_mean(x, d, w, stats.means, s)
        samples.append(pos_tail.repeat_interleave(d.shape[1]))
        donors.append(d.flatten())
        weights.append(w.flatten())
        extra[pos_tail] = float(alpha)
    if pos_own.numel():
        cls_o = classes[pos_own]
        lonely = cls_o[stats.counts[cls_o] < 2]  # no covariance
        if lonely.numel():
            c, n = int(lonely[0]), int(stats.counts[lonely[0]])
            raise ValueError(
                f'class {c} has {n} training feature(s), so its covariance '
                '(divided by n_c - 1) is undefined and it cannot be drawn '
                'from its own statistics. Make it a tail class (raise '
                f'tail_threshold above {n}) so it is calibrated from donors '
                'with more images.'
            )
        out[pos_own.to(dev)] = stats.means[cls_o.to(dev)]
        samples.append(pos_own)
        donors.append(cls_o)
        weights.append(torch.ones(pos_own.numel()))
    if not num:
        return out, classes.to(dev)
    stats.noise(
        num,
        torch.cat(samples),
        torch.cat(donors),
        torch.cat(weights),
        extra if alpha > 0 else None,
        dev_gen,
        out=out,
    )
    return out, classes.to(dev)
