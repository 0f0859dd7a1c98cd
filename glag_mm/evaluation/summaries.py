"""Non-scalar results that print as one short line in the logs.

mmengine's log processor prints non-scalar metrics on the val / test line
(1,000 per-class numbers for ImageNet-LT). These types are a plain ``list``
/ ``dict`` otherwise and pickle as one, so no saved file refers to them.
"""

import copy
import math


class _ShortRepr:
    """Pickles as its plain base type ``_plain``; copies keep the type."""

    _plain = object

    def __reduce__(self):
        return (self._plain, (self._plain(self),))

    def __copy__(self):
        return type(self)(self)

    def __deepcopy__(self, memo: dict):
        return type(self)(copy.deepcopy(self._plain(self), memo))


class PerClassAccuracy(_ShortRepr, list):
    """Per-class accuracies (percent), a ``list`` but for its ``repr``."""

    _plain = list

    def __repr__(self) -> str:
        values = [v for v in self if not math.isnan(v)]
        if not values:
            return f'<per-class accuracy of {len(self)} classes>'
        return (
            f'<per-class accuracy of {len(self)} classes: min '
            f'{min(values):.2f}, mean {sum(values) / len(values):.2f}, '
            f'max {max(values):.2f}>'
        )


class ReliabilityTable(_ShortRepr, dict):
    """``count``, ``confidence``, ``accuracy`` (B entries, percent; None
    for an empty bin: strict JSON) and ``ece``, a ``dict`` but for its
    ``repr``."""

    _plain = dict

    def __repr__(self) -> str:
        count = self.get('count', [])
        return (
            f'<reliability of {sum(count)} predictions in {len(count)} '
            f'bins, ECE {self.get("ece", math.nan):.2f}>'
        )
