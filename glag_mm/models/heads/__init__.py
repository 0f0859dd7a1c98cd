"""Classification heads."""

from .fbl_head import FBLHead  # noqa: F401
