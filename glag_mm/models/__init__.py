"""glag_mm.models."""
from . import backbones  # noqa: F401
