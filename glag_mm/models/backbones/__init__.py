"""Backbones missing from mmpretrain."""

from .efficientnet_lite import EfficientNetLite
from .resnet10 import ResNet10  # noqa: F401
from .resnet_cifar import CifarResNet, ZeroPadShortcut

__all__ = ['CifarResNet', 'EfficientNetLite', 'ZeroPadShortcut']
