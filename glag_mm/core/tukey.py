"""Tukey's ladder of powers on features (docs/method.md, stage two, item 2).

Before class statistics are taken and features are generated, every pooled
feature x is mapped elementwise to

    x~ = sign(x) |x| ** lam    (lam != 0)
    x~ = log(x + eps)          (lam == 0, x >= 0 only)

lam = 1 is the identity; the default lam = 0.5 is Free-Lunch distribution
calibration's choice [prior]; it makes skewed non-negative features closer
to Gaussian. A head applies it at train and test time alike [ours].

The paper, like the distribution-calibration work it builds on, assumes
post-ReLU features (x >= 0), where sign(x) |x| ** lam is exactly x ** lam.
LayerNorm-ended trunks (ViT, DeiT, Swin, ConvNeXt, BEiT) give signed
features; for them the project uses the odd extension sign(x) |x| ** lam
[ours], which keeps the order and sign of every feature and compresses
large magnitudes on both sides, so the stage-two defaults run unchanged on
every trunk family. Measured on a LayerNorm-ended (signed) tiny ViT's
features (docs/architecture.md, "Signed features"), the signed power 0.5 did
at least as well as lam = 1. The log (lam = 0) has no such extension and
still needs x >= 0.
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
    """sign(x) |x| ** lam, log(x + eps) at lam = 0, ``x`` itself at lam = 1.

    ``check`` verifies non-negativity for lam = 0 (one boolean read back
    from the device; a caller that validated the features may skip it
    inside a training step).
    """
    if lam == 1.0:  # lam: checked by check_tukey_lambda (AFGHead)
        return x
    if lam == 0.0:
        if check and bool((x < 0).any()):
            raise ValueError(
                'features must be non-negative (post-ReLU) for the log '
                f'transform (tukey_lambda=0; got a minimum of '
                f'{float(x.min()):.4g}); use tukey_lambda=0.5 (a signed '
                'power) or 1 for signed features'
            )
        return torch.log(x + eps)
    return x.abs().pow(lam).copysign(x)
