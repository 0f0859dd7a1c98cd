"""Tukey's ladder of powers on features (METHOD.md, stage two, item 2).

Before class statistics are taken and features are generated, every pooled
feature x (post-ReLU, so x >= 0) is mapped elementwise to

    x~ = x ** lam          (lam != 0)
    x~ = log(x + eps)      (lam == 0)

lam = 1 is the identity; the default lam = 0.5 is Free-Lunch distribution
calibration's choice [prior]; it makes skewed non-negative features closer
to Gaussian. A head applies it at train and test time alike [ours].
Fractional powers and the log need non-negative features.
"""

import math

import torch
from torch import Tensor


def check_tukey_lambda(lam: float) -> float:
    """Tukey's lambda as a float (a finite real number)."""
    if isinstance(lam, bool) or not isinstance(lam, (int, float)):
        raise TypeError(
            f'tukey lambda must be a real number (e.g. 0.5, or 1 for no '
            f'transform), got {lam!r}'
        )
    if not math.isfinite(lam):
        raise ValueError(f'tukey lambda must be finite, got {lam!r}')
    return float(lam)


def tukey_transform(
    x: Tensor, lam: float = 0.5, eps: float = 1e-6, check: bool = True
) -> Tensor:
    """x ** lam, log(x + eps) at lam = 0, ``x`` itself at lam = 1.

    ``check`` verifies non-negativity for a fractional or zero lam (one
    boolean read back from the device; a caller that validated the features
    may skip it inside a training step).
    """
    if lam == 1.0:  # lam: checked by check_tukey_lambda (AFGHead)
        return x
    fractional = lam == 0 or lam != math.floor(lam)
    if check and fractional and bool((x < 0).any()):
        raise ValueError(
            'features must be non-negative (post-ReLU) for a fractional '
            f'Tukey power (got lam={lam} and a minimum of '
            f'{float(x.min()):.4g}); use lam=1 or a ReLU-ended backbone'
        )
    if lam == 0.0:
        return torch.log(x + eps)
    return x.pow(lam)
