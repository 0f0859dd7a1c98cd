"""The CIFAR ResNet of the long-tail literature (ResNet-20/32/44/56/110).

He et al. (2016, section 4.2): a 3x3 stem with 16 channels, then three
stages of n basic blocks with 16, 32 and 64 channels (the last two halve the
resolution), depth = 6n + 2. The CIFAR-LT papers (LDAM-DRW, BBN, decoupling,
Balanced Softmax, GLAG) use depth 32 (about 0.46M parameters without the
classifier); mmpretrain's ``ResNet_CIFAR``, whose stem, freezing and init
this class reuses, builds the much larger 4-stage ImageNet layout.
Shortcuts where the width grows: ``'A'`` (default, as the long-tail code
bases: stride-2 subsampling plus zero-padded channels, no parameters) or
``'B'`` (strided 1x1 conv plus norm).
"""

from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmpretrain.models.backbones import ResNet_CIFAR
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
class CifarResNet(ResNet_CIFAR):
    """ResNet-(6n+2) for small images (module docstring).

    ``frozen_stages``: -1 none, 0 the stem, k the stem and stages 1..k (kept
    in eval mode). ``zero_init_residual`` defaults to False, as the CIFAR-LT
    code bases (mmpretrain's ResNet: True). The default init is
    Kaiming-normal convs and unit norms, as mmpretrain's.

    Example:
        >>> net = CifarResNet(depth=32)
        >>> [tuple(o.shape) for o in net(torch.rand(2, 3, 32, 32))]
        [(2, 64, 8, 8)]
    """

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
        out_indices = (
            (out_indices,) if isinstance(out_indices, int) else out_indices
        )
        problem = (
            depth < 8 or (depth - 2) % 6 != 0,
            shortcut_type not in ('A', 'B'),
            len(stage_channels) != 3,
            any(not -3 <= i < 3 for i in out_indices),
            not -1 <= frozen_stages <= 3,
        )
        if any(problem):
            what = (
                f'depth must be 6n + 2 with n >= 1 (20, 32, 44, 56, 110, '
                f'...), got {depth}',
                f"shortcut_type must be 'A' or 'B', got {shortcut_type!r}",
                f'stage_channels needs 3 widths, got {tuple(stage_channels)}',
                f'out_indices must lie in [-3, 2], got {tuple(out_indices)}',
                f'frozen_stages must be in -1..3, got {frozen_stages}',
            )[problem.index(True)]
            raise ValueError(f'CifarResNet: {what}')
        n = (depth - 2) // 6
        # read by ResNet.__init__, which builds the stages
        self.arch_settings = {depth: (BasicBlock, (n, n, n))}
        self.stage_channels = tuple(stage_channels)
        self.shortcut_type = shortcut_type
        super().__init__(
            depth,
            in_channels=in_channels,
            stem_channels=stage_channels[0],
            base_channels=stage_channels[0],
            num_stages=3,
            strides=(1, 2, 2),
            dilations=(1, 1, 1),
            out_indices=tuple(i % 3 for i in out_indices),
            frozen_stages=frozen_stages,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg or dict(type='BN', requires_grad=True),
            norm_eval=norm_eval,
            with_cp=with_cp,
            zero_init_residual=zero_init_residual,
            init_cfg=list(init_cfg)
            if isinstance(init_cfg, tuple)
            else init_cfg,
        )

    def make_res_layer(self, num_blocks, stride, **kwargs) -> nn.Sequential:
        """Stage ``len(self.res_layers)``: its width from ``stage_channels``
        and the chosen shortcut where the width or resolution changes."""
        stage = len(self.res_layers)
        width = self.stage_channels[stage - 1] if stage else self.stem_channels
        out_width = self.stage_channels[stage]
        blocks = []
        for j in range(num_blocks):
            step = stride if j == 0 else 1
            blocks.append(
                BasicBlock(
                    width,
                    out_width,
                    stride=step,
                    downsample=self._shortcut(width, out_width, step),
                    with_cp=self.with_cp,
                    conv_cfg=self.conv_cfg,
                    norm_cfg=self.norm_cfg,
                )
            )
            width = out_width
        return nn.Sequential(*blocks)

    def _shortcut(self, in_channels, out_channels, stride):
        if stride == 1 and in_channels == out_channels:
            return None
        if self.shortcut_type == 'A':
            return ZeroPadShortcut(in_channels, out_channels, stride)
        return nn.Sequential(
            build_conv_layer(
                self.conv_cfg,
                in_channels,
                out_channels,
                1,
                stride=stride,
                bias=False,
            ),
            build_norm_layer(self.norm_cfg, out_channels)[1],
        )

    def _freeze_stages(self) -> None:
        super()._freeze_stages()
        if self.frozen_stages >= 0:
            self.conv1.eval()  # as the rest of the frozen stem

    def train(self, mode: bool = True) -> 'CifarResNet':
        super().train(mode)  # mmpretrain's returns None
        return self
