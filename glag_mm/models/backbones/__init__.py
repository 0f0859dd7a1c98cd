"""Backbones missing from mmpretrain."""

from .efficientnet_lite import EfficientNetLite
from .frozen_backbone import (
    FrozenBackbone,
    StageOneInit,
    stage_one_checkpoint,
    stage_one_state,
)
from .resnet10 import ResNet10
from .resnet_cifar import CifarResNet, ZeroPadShortcut
