"""Backbones missing from mmpretrain."""

from .efficientnet_lite import EfficientNetLite
from .resnet10 import ResNet10
from .resnet_cifar import CifarResNet, ZeroPadShortcut
