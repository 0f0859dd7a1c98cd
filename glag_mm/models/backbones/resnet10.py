"""ResNet-10, the small ImageNet-LT backbone of the decoupling literature."""

from mmpretrain.models.backbones.resnet import BasicBlock, ResNet
from mmpretrain.registry import MODELS


@MODELS.register_module()
class ResNet10(ResNet):
    """mmpretrain's ResNet with one basic block per stage (512-d).

    Kang et al. (2020) train it on ImageNet-LT, as the GLAG paper does;
    mmpretrain's ``ResNet`` knows depths 18 to 152 only.
    """

    arch_settings = {10: (BasicBlock, (1, 1, 1, 1))}

    def __init__(self, depth: int = 10, **kwargs) -> None:
        if depth != 10:
            raise ValueError(
                f'ResNet10 has depth 10, got depth={depth}; use '
                "type='ResNet' for depths 18-152."
            )
        super().__init__(depth=10, **kwargs)
