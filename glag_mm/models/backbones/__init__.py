"""Backbones missing from mmpretrain."""

from .efficientnet_lite import EfficientNetLite
from .resnet_cifar import CifarResNet, ZeroPadShortcut

__all__ = ['CifarResNet', 'EfficientNetLite', 'ZeroPadShortcut']
