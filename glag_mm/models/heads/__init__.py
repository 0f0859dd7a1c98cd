"""Classification heads."""

from .afg_head import AFGHead  # noqa: F401
from .fbl_head import FBLHead  # noqa: F401
from .lws_head import LWSHead  # noqa: F401
