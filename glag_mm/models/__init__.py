"""glag_mm.models."""
from . import backbones  # noqa: F401
from . import losses  # noqa: F401
from . import heads  # noqa: F401
