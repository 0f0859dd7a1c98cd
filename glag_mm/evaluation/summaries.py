"""Non-scalar results that print as one short line in the logs.

mmengine's ``RuntimeInfoHook`` stores non-scalar metrics in the message hub
and the log processor prints them on the validation / test log line, which
for ImageNet-LT would be 1,000 per-class numbers per epoch. These types are
a plain ``list`` / ``dict`` for every other purpose and pickle as one (the
broadcast to other ranks, checkpoints of the message hub), so no saved file
refers to them.
"""

import math

__all__ = ['PerClassAccuracy', 'ReliabilityTable']


class PerClassAccuracy(list):
    """Per-class accuracies (percent) that print as a one-line summary.

    A plain ``list`` of floats for every purpose except ``str`` / ``repr``:
    mmengine's ``RuntimeInfoHook`` stores non-scalar metrics in the message
    hub and the log processor prints them on the validation / test log line,
    which for ImageNet-LT would be 1,000 numbers per epoch. Pickling (the
    broadcast to other ranks, checkpoints of the message hub) turns it into a
    plain list, so no saved file refers to this class.
    """

    def __repr__(self) -> str:
        values = [v for v in self if not math.isnan(v)]
        if not values:
            return f'<per-class accuracy of {len(self)} classes>'
        return (
            f'<per-class accuracy of {len(self)} classes: min '
            f'{min(values):.2f}, mean {sum(values) / len(values):.2f}, '
            f'max {max(values):.2f}>'
        )

    __str__ = __repr__

    def __reduce__(self):
        return (list, (list(self),))

    def __copy__(self) -> 'PerClassAccuracy':
        return PerClassAccuracy(self)

    def __deepcopy__(self, memo: dict) -> 'PerClassAccuracy':
        return PerClassAccuracy(self)


class ReliabilityTable(dict):
    """Per-bin counts, mean confidences and accuracies (percent).

    A plain ``dict`` with the lists ``count``, ``confidence`` and
    ``accuracy`` (B entries each; None where a bin is empty, so that it
    writes as strict JSON) and ``ece``. It prints as one short line in the
    validation / test log and pickles as a plain dict, so no saved file
    refers to this class.
    """

    def __repr__(self) -> str:
        count = self.get('count', [])
        return (
            f'<reliability of {sum(count)} predictions in {len(count)} '
            f'bins, ECE {self.get("ece", math.nan):.2f}>'
        )

    __str__ = __repr__

    def __reduce__(self):
        return (dict, (dict(self),))

    def __copy__(self) -> 'ReliabilityTable':
        return ReliabilityTable(self)

    def __deepcopy__(self, memo: dict) -> 'ReliabilityTable':
        return ReliabilityTable(
            {k: list(v) if isinstance(v, list) else v for k, v in self.items()}
        )
