"""Tukey's ladder of powers on features (METHOD.md, stage two, item 2).

Before class statistics are taken and features are generated, every pooled
feature x (post-ReLU, so x >= 0) is mapped elementwise to

    x~ = x ** lam          (lam != 0)
    x~ = log(x + eps)      (lam == 0)

lam = 1 is the identity; the default lam = 0.5 is Free-Lunch distribution
calibration's choice [prior]. It makes skewed, non-negative feature
distributions closer to Gaussian, which the sampler assumes. Real features
must reach the classifier in the same space at train and at test time, so a
head applies the same transform in both [ours].

A fractional power (or the log) of a negative number is not real, so those
settings require non-negative features; integer powers accept any sign.
"""

import math

import torch
from torch import Tensor

__all__ = ['check_tukey_lambda', 'tukey_transform']


def check_tukey_lambda(lam: float) -> float:
    """Validate Tukey's lambda and return it as a float.

    Raises:
        TypeError: ``lam`` is not a real number.
        ValueError: ``lam`` is not finite.
    """
    if isinstance(lam, bool) or not isinstance(lam, (int, float)):
        raise TypeError(
            f'tukey lambda must be a real number (e.g. 0.5, or 1 for no '
            f'transform), got {lam!r}'
        )
    if not math.isfinite(lam):
        raise ValueError(f'tukey lambda must be finite, got {lam!r}')
    return float(lam)


def _needs_non_negative(lam: float) -> bool:
    return lam == 0 or lam != math.floor(lam)


def tukey_transform(
    x: Tensor, lam: float = 0.5, eps: float = 1e-6, check: bool = True
) -> Tensor:
    """Tukey's ladder of powers, elementwise.

    x~ = x ** lam for lam != 0, log(x + eps) for lam = 0; lam = 1 returns
    ``x`` itself (no copy).

    Args:
        x: features, any shape; post-ReLU (non-negative) for fractional lam.
        lam: the power lambda (METHOD.md default 0.5).
        eps: offset inside the log for lam = 0, so zeros stay finite.
        check: verify non-negativity when lam is fractional or 0. This reads
            one boolean back from the device; a caller that has already
            validated the features (e.g. in the statistics pass) may pass
            ``False`` inside a training step.

    Returns:
        Tensor: the transformed features, same shape and dtype as ``x``.

    Raises:
        ValueError: negative entries with a fractional or zero lambda.
    """
    lam = check_tukey_lambda(lam)
    if lam == 1.0:
        return x
    if check and _needs_non_negative(lam) and bool((x < 0).any()):
        raise ValueError(
            'features must be non-negative (post-ReLU) for a fractional '
            f'Tukey power (got lam={lam} and a minimum of '
            f'{float(x.min()):.4g}); use lam=1 or a ReLU-ended backbone'
        )
    if lam == 0.0:
        return torch.log(x + eps)
    return x.pow(lam)
