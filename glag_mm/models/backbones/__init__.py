"""Backbones missing from mmpretrain."""

from .resnet_cifar import CifarResNet, ZeroPadShortcut

__all__ = ['CifarResNet', 'ZeroPadShortcut']
