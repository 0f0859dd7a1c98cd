"""Argument checks shared by every constructor: a refusal names the
setting, its range and the value given."""

import math
import numbers
from typing import Any, Optional


def _refuse(name, value, kind, bounds, owner):
    prefix = f'{owner}: ' if owner else ''
    rule = ' and '.join(bounds)
    return ValueError(
        f'{prefix}{name} must be {kind}{" " + rule if rule else ""}, '
        f'got {value!r}'
    )


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
