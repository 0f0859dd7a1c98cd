"""Progress schedules shared by GraLoss (tau), KD (beta) and FBL (a).

GLAG's Gradual Balanced Loss raises the logit-adjustment strength from 0 to
its maximum as training progresses (docs/method.md, stage one, item 2).
The shapes are our reconstruction [ours]; the paper compares concave, linear
and convex curves and finds convex best [paper]:

* ``'linear'``:   v(u) = v_max * u
* ``'convex'``:   v(u) = v_max * u ** p        (p > 1, default 2)
* ``'concave'``:  v(u) = v_max * u ** (1 / p)
* ``'constant'``: v(u) = v_max                 (fixed logit adjustment)

u in [0, 1] is the progress through the current stage.
"""

from .checks import check_number

_SHAPES = {  # v(u) / v_max
    'convex': lambda u, p: u**p,
    'linear': lambda u, p: u,
    'concave': lambda u, p: u ** (1.0 / p),
    'constant': lambda u, p: 1.0,
}
SCHEDULES = tuple(_SHAPES)


def check_schedule(
    schedule: str, value_max: float, power: float = 2.0, name: str = 'tau_max'
) -> None:
    """Raise a ``ValueError`` that says what to change for bad arguments."""
    if schedule not in SCHEDULES:
        raise ValueError(
            f'unknown schedule {schedule!r}; choose one of {SCHEDULES}'
        )
    check_number(name, value_max, at_least=0)
    check_number('power', power, above=0)


def schedule_value(
    progress: float,
    schedule: str = 'convex',
    value_max: float = 1.0,
    power: float = 2.0,
) -> float:
    """v(u), u = ``progress`` clipped to [0, 1] (module docstring)."""
    u = min(max(float(progress), 0.0), 1.0)
    return float(value_max) * _SHAPES[schedule](u, power)
