"""ResNet-10, the small ImageNet-LT backbone of the decoupling literature."""

from mmpretrain.models.backbones.resnet import BasicBlock, ResNet
from mmpretrain.registry import MODELS

__all__ = ['ResNet10']


@MODELS.register_module()
class ResNet10(ResNet):
    """mmpretrain's ResNet with one basic block per stage (512-d features).

    Kang et al. (2020, "Decoupling representation and classifier") train it
    from scratch on ImageNet-LT; the GLAG paper reports ImageNet-LT results
    with it. mmpretrain's ``ResNet`` only knows depths 18 to 152, so this
    subclass adds depth 10; every other argument is ``ResNet``'s.

    Args:
        depth: must be 10 (accepted so configs may spell it out).
        **kwargs: arguments of :class:`mmpretrain.models.ResNet`.
    """

    arch_settings = {10: (BasicBlock, (1, 1, 1, 1))}

    def __init__(self, depth: int = 10, **kwargs) -> None:
        if depth != 10:
            raise ValueError(
                f'ResNet10 has depth 10, got depth={depth}; use '
                "type='ResNet' for depths 18-152."
            )
        super().__init__(depth=10, **kwargs)
