"""Argument checks shared by every constructor: a refusal names the
setting, its range and the value given."""

import math
import numbers
from typing import Any, Optional, Tuple


def _refuse(name, value, kind, bounds, owner):
    prefix = f'{owner}: ' if owner else ''
    rule = ' and '.join(bounds)
    return ValueError(
        f'{prefix}{name} must be {kind}{" " + rule if rule else ""}, '
        f'got {value!r}'
    )


def check_choice(
    name: str, value: Any, choices: Tuple, owner: Optional[str] = None
) -> Any:
    """``value`` if it is one of ``choices``, else a ValueError naming them."""
    if value not in choices:
        raise _refuse(name, value, f'one of {tuple(choices)}', (), owner)
    return value


def check_number(
    name: str,
    value: Any,
    *,
    above: Optional[float] = None,
    at_least: Optional[float] = None,
    at_most: Optional[float] = None,
    owner: str = '',
) -> float:
    """``float(value)`` for a finite number (not ``bool``) in range, else
    e.g. ``ValueError("GALALoss: eps must be a finite number > 0, got 0")``.
    """
    limits = (('>', above), ('>=', at_least), ('<=', at_most))
    bounds = [f'{op} {b:g}' for op, b in limits if b is not None]
    ok = (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and (above is None or value > above)
        and (at_least is None or value >= at_least)
        and (at_most is None or value <= at_most)
    )
    if not ok:
        raise _refuse(name, value, 'a finite number', bounds, owner)
    return float(value)


def check_integer(
    name: str,
    value: Any,
    *,
    at_least: Optional[int] = None,
    owner: str = '',
) -> int:
    """``int(value)`` for an integer (not ``bool``) >= ``at_least``."""
    ok = (
        not isinstance(value, bool)
        and isinstance(value, numbers.Integral)
        and (at_least is None or value >= at_least)
    )
    if not ok:
        bounds = [] if at_least is None else [f'>= {at_least}']
        raise _refuse(name, value, 'an integer', bounds, owner)
    return int(value)


def check_unit_interval(
    name: str, value: Any, *, owner: str = ''
) -> Tuple[float, float]:
    """``(low, high)`` for a pair of numbers with 0 <= low <= high <= 1,
    else e.g. ``ValueError("AFGHead: confidence_range must be a pair
    (low, high) with 0 <= low <= high <= 1, got (0.2, 1.5)")``."""
    pair = tuple(value) if isinstance(value, (list, tuple)) else None
    ok = (
        pair is not None
        and len(pair) == 2
        and all(
            not isinstance(v, bool)
            and isinstance(v, (int, float))
            and 0 <= v <= 1
            for v in pair
        )
        and pair[0] <= pair[1]
    )
    if not ok:
        prefix = f'{owner}: ' if owner else ''
        raise ValueError(
            f'{prefix}{name} must be a pair (low, high) with 0 <= low <= '
            f'high <= 1, got {value!r}'
        )
    return float(pair[0]), float(pair[1])
