"""Classification heads."""

from .afg_head import AFGHead
from .distilled_linear_head import DistilledLinearClsHead
from .fbl_head import FBLHead
from .lws_head import LWSHead
from .tau_norm_head import TauNormHead
