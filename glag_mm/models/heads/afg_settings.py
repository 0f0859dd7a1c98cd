"""AFGHead's settings, validated with messages that name the fix."""

from types import SimpleNamespace
from typing import Optional

import torch

from ...core.calibration import GENERATION_MODES, WEIGHTINGS, tail_classes
from ...core.tukey import check_tukey_lambda


def _number(value, name: str, low: Optional[float] = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f'AFGHead: {name} must be a number, got {value!r}')
    if low is not None and value < low:
        raise ValueError(f'AFGHead: {name} must be >= {low}, got {value!r}')
    return float(value)


def _count(value, name: str, allow_none: bool = False) -> Optional[int]:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        extra = 'None or ' if allow_none else ''
        raise ValueError(
            f'AFGHead: {name} must be {extra}an int >= 1, got {value!r}'
        )
    return value


def check_afg_settings(
    tukey_lambda,
    tukey_eps,
    tail_threshold,
    num_donors,
    donor_weighting,
    alpha,
    init_confidence,
    confidence_step,
    confidence_range,
    confidence_reference,
    generation,
    generation_ratio,
    n_max,
    max_generated,
    exact_rows,
    factor_rank,
    seed,
) -> dict:
    """The validated settings of :class:`~glag_mm.models.heads.AFGHead`."""
    out = SimpleNamespace()
    out.tukey_lambda = check_tukey_lambda(tukey_lambda)
    out.tukey_eps = _number(tukey_eps, 'tukey_eps', 0.0)
    tail_classes(torch.ones(1), tail_threshold)  # validates the value
    out.tail_threshold = tail_threshold
    out.num_donors = _count(num_donors, 'num_donors')
    if donor_weighting not in WEIGHTINGS:
        raise ValueError(
            f'AFGHead: donor_weighting must be one of {WEIGHTINGS}, got '
            f'{donor_weighting!r}'
        )
    out.donor_weighting = donor_weighting
    out.alpha = _number(alpha, 'alpha', 0.0)
    low, high = (_number(v, 'confidence_range') for v in confidence_range)
    init = _number(init_confidence, 'init_confidence')
    if not low <= init <= high:
        raise ValueError(
            'AFGHead: need s_min <= init_confidence <= s_max, got '
            f'{init} and confidence_range={confidence_range}'
        )
    out.confidence_range = (low, high)
    out.confidence_step = _number(confidence_step, 'confidence_step', 0)
    if confidence_reference not in ('previous', 'stage_one'):
        raise ValueError(
            "AFGHead: confidence_reference must be 'previous' or "
            f"'stage_one', got {confidence_reference!r}"
        )
    out.confidence_reference = confidence_reference
    if generation not in GENERATION_MODES:
        raise ValueError(
            f'AFGHead: generation must be one of {GENERATION_MODES} '
            "('balance' with instance-balanced real batches, 'ratio' "
            f'with a class-aware sampler), got {generation!r}'
        )
    out.generation = generation
    out.generation_ratio = _number(generation_ratio, 'generation_ratio', 0)
    out.n_max = _count(n_max, 'n_max', allow_none=True)
    if max_generated is not None and (
        not isinstance(max_generated, int) or max_generated < 0
    ):
        raise ValueError(
            'AFGHead: max_generated must be None or an int >= 0, got '
            f'{max_generated!r}'
        )
    out.max_generated = max_generated
    out.exact_rows = _count(exact_rows, 'exact_rows')
    out.factor_rank = _count(factor_rank, 'factor_rank')
    out.seed = int(seed)

    out.init_confidence = init
    return vars(out)
