"""glag_mm: long-tailed recognition for mmpretrain.

Importing the package applies the workarounds of :mod:`glag_mm.compat` and
registers everything into mmpretrain's registries (MODELS, HOOKS, DATASETS,
DATA_SAMPLERS, METRICS).
"""

from . import compat

compat.apply_all()

from . import core, datasets, engine, evaluation, models  # noqa: E402
from .version import __version__  # noqa: E402
