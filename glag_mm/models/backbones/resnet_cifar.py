"""The CIFAR ResNet of the long-tail literature (ResNet-20/32/44/56/110).

He et al. (2016, section 4.2): a 3x3 stem with 16 channels, then three
stages of n basic blocks with 16, 32 and 64 channels (the last two halve the
resolution), depth = 6n + 2. The CIFAR-LT papers (LDAM-DRW, BBN, decoupling,
Balanced Softmax, GLAG) use depth 32 (about 0.46M parameters without the
classifier); mmpretrain's ``ResNet_CIFAR`` is the much larger ImageNet
ResNet with a CIFAR stem. Shortcuts where the width grows: ``'A'`` (default,
as the long-tail code bases: stride-2 subsampling plus zero-padded channels,
no parameters) or ``'B'`` (strided 1x1 conv plus norm). Outputs: a tuple of
the ``out_indices`` stages' feature maps, as mmpretrain's backbones.
"""

from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmengine.model.weight_init import constant_init
from mmengine.utils.dl_utils.parrots_wrapper import _BatchNorm
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.models.backbones.resnet import BasicBlock
from mmpretrain.registry import MODELS


class ZeroPadShortcut(nn.Module):
    """Option A: ``x[:, :, ::s, ::s]`` with ``out - in`` zero channels
    split evenly before and after."""

    def __init__(
        self, in_channels: int, out_channels: int, stride: int = 1
    ) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(
                f'ZeroPadShortcut cannot reduce channels ({in_channels} -> '
                f'{out_channels}); use shortcut_type="B".'
            )
        self.stride = stride
        self.pad_before = (out_channels - in_channels) // 2
        self.pad_after = out_channels - in_channels - self.pad_before

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad_before, self.pad_after))


@MODELS.register_module()
class CifarResNet(BaseBackbone):
    """ResNet-(6n+2) for small images (module docstring).

    ``frozen_stages``: -1 none, 0 the stem, k the stem and stages 1..k (kept
    in eval mode, as mmpretrain's ResNet). ``zero_init_residual`` defaults
    to False, as the CIFAR-LT code bases (mmpretrain's ResNet: True). The
    default init is Kaiming-normal convs and unit norms, as mmpretrain's.

    Example:
        >>> net = CifarResNet(depth=32)
        >>> [tuple(o.shape) for o in net(torch.rand(2, 3, 32, 32))]
        [(2, 64, 8, 8)]
    """

    num_stages = 3

    def __init__(
        self,
        depth: int = 32,
        in_channels: int = 3,
        stage_channels: Sequence[int] = (16, 32, 64),
        shortcut_type: str = 'A',
        out_indices: Sequence[int] = (2,),
        frozen_stages: int = -1,
        norm_eval: bool = False,
        zero_init_residual: bool = False,
        norm_cfg: Optional[dict] = None,
        conv_cfg: Optional[dict] = None,
        with_cp: bool = False,
        init_cfg: Optional[Union[dict, list]] = (
            dict(type='Kaiming', layer=['Conv2d']),
            dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm']),
        ),
    ) -> None:
        if norm_cfg is None:
            norm_cfg = dict(type='BN', requires_grad=True)
        if isinstance(init_cfg, tuple):
            init_cfg = list(init_cfg)
        super().__init__(init_cfg=init_cfg)
        if depth < 8 or (depth - 2) % 6 != 0:
            raise ValueError(
                f'CifarResNet: depth must be 6n + 2 with n >= 1 (20, 32, '
                f'44, 56, 110, ...), got {depth}'
            )
        if shortcut_type not in ('A', 'B'):
            raise ValueError(
                f"CifarResNet: shortcut_type must be 'A' or 'B', got "
                f'{shortcut_type!r}'
            )
        if len(stage_channels) != self.num_stages:
            raise ValueError(
                f'CifarResNet: stage_channels needs 3 widths, got '
                f'{tuple(stage_channels)}'
            )
        if isinstance(out_indices, int):
            out_indices = (out_indices,)
        indices = []
        for index in out_indices:
            if not -self.num_stages <= index < self.num_stages:
                raise ValueError(
                    f'CifarResNet: out_indices must lie in [-3, 2], got '
                    f'{tuple(out_indices)}'
                )
            indices.append(index % self.num_stages)
        if not -1 <= frozen_stages <= self.num_stages:
            raise ValueError(
                f'CifarResNet: frozen_stages must be in -1..3, got '
                f'{frozen_stages}'
            )
        self.depth = depth
        self.blocks_per_stage = (depth - 2) // 6
        self.shortcut_type = shortcut_type
        self.out_indices = tuple(indices)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.zero_init_residual = zero_init_residual

        width = stage_channels[0]
        self.conv1 = build_conv_layer(
            conv_cfg, in_channels, width, 3, padding=1, bias=False
        )
        self.norm1_name, norm1 = build_norm_layer(norm_cfg, width, postfix=1)
        self.add_module(self.norm1_name, norm1)
        self.relu = nn.ReLU(inplace=True)

        self.res_layers = []
        for i, out_width in enumerate(stage_channels):
            blocks = []
            for j in range(self.blocks_per_stage):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(
                    BasicBlock(
                        width,
                        out_width,
                        stride=stride,
                        downsample=self._shortcut(
                            width, out_width, stride, conv_cfg, norm_cfg
                        ),
                        with_cp=with_cp,
                        conv_cfg=conv_cfg,
                        norm_cfg=norm_cfg,
                    )
                )
                width = out_width
            name = f'layer{i + 1}'
            self.add_module(name, nn.Sequential(*blocks))
            self.res_layers.append(name)
        self._freeze_stages()

    def _shortcut(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        conv_cfg: Optional[dict],
        norm_cfg: dict,
    ) -> Optional[nn.Module]:
        if stride == 1 and in_channels == out_channels:
            return None
        if self.shortcut_type == 'A':
            return ZeroPadShortcut(in_channels, out_channels, stride)
        return nn.Sequential(
            build_conv_layer(
                conv_cfg,
                in_channels,
                out_channels,
                1,
                stride=stride,
                bias=False,
            ),
            build_norm_layer(norm_cfg, out_channels)[1],
        )

    @property
    def norm1(self) -> nn.Module:
        return getattr(self, self.norm1_name)

    def _freeze_stages(self) -> None:
        frozen = []
        if self.frozen_stages >= 0:
            frozen += [self.conv1, self.norm1]
        frozen += [
            getattr(self, f'layer{i}')
            for i in range(1, self.frozen_stages + 1)
        ]
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def init_weights(self) -> None:
        super().init_weights()
        pretrained = (
            isinstance(self.init_cfg, dict)
            and self.init_cfg.get('type') == 'Pretrained'
        )
        if self.zero_init_residual and not pretrained:
            for module in self.modules():
                if isinstance(module, BasicBlock):
                    constant_init(module.norm2, 0)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        x = self.relu(self.norm1(self.conv1(x)))
        outs = []
        for i, name in enumerate(self.res_layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def train(self, mode: bool = True) -> 'CifarResNet':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self
