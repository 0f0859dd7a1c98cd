"""CifarResNet: size, shapes, freezing and building from a config."""

import pytest
import torch
from mmpretrain.registry import MODELS

from glag_mm.models.backbones import CifarResNet, ZeroPadShortcut


def expected_parameters(
    depth: int, in_channels: int = 3, shortcut: str = 'A'
) -> int:
    """Parameters counted layer by layer from the architecture's definition.

    3x3 convs without bias (k*k*c_in*c_out), each followed by a norm layer
    with a weight and a bias (2*c_out); option-B shortcuts add a 1x1 conv and
    a norm layer where the width changes.
    """
    n = (depth - 2) // 6
    widths = (16, 32, 64)
    total = 9 * in_channels * 16 + 2 * 16  # stem
    c_in = 16
    for width in widths:
        for _ in range(n):
            total += 9 * c_in * width + 2 * width  # conv1 + norm1
            total += 9 * width * width + 2 * width  # conv2 + norm2
            if shortcut == 'B' and c_in != width:
                total += c_in * width + 2 * width
            c_in = width
    return total


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_resnet32_parameter_count():
    # 432 + 32 (stem) + 5 * 4,672 + (13,952 + 4 * 18,560)
    # + (55,552 + 4 * 73,984) = 463,504: "about 0.46M" as in the papers.
    assert expected_parameters(32) == 463_504
    assert count(CifarResNet(depth=32)) == 463_504
    assert count(CifarResNet(depth=32, shortcut_type='B')) == (
        expected_parameters(32, shortcut='B')
    )
    assert expected_parameters(32, shortcut='B') == 463_504 + 576 + 2_176
    for depth in (20, 44, 56, 110):
        assert count(CifarResNet(depth=depth)) == expected_parameters(depth)
    assert count(CifarResNet(depth=32, in_channels=1)) == (
        expected_parameters(32, in_channels=1)
    )


@pytest.mark.parametrize('shortcut', ['A', 'B'])
def test_output_shapes(shortcut):
    net = CifarResNet(depth=20, out_indices=(0, 1, 2), shortcut_type=shortcut)
    outs = net(torch.rand(2, 3, 32, 32))
    assert [tuple(o.shape) for o in outs] == [
        (2, 16, 32, 32),
        (2, 32, 16, 16),
        (2, 64, 8, 8),
    ]
    gray = CifarResNet(depth=32, in_channels=1, shortcut_type=shortcut)
    outs = gray(torch.rand(2, 1, 28, 28))
    assert isinstance(outs, tuple) and len(outs) == 1
    assert tuple(outs[0].shape) == (2, 64, 7, 7)
    last = CifarResNet(depth=20, out_indices=(-1,))(torch.rand(1, 3, 32, 32))
    assert tuple(last[0].shape) == (1, 64, 8, 8)


def test_zero_pad_shortcut_is_subsample_plus_zero_channels():
    x = torch.randn(2, 16, 8, 8)
    y = ZeroPadShortcut(16, 32, stride=2)(x)
    assert y.shape == (2, 32, 4, 4)
    assert torch.equal(y[:, 8:24], x[:, :, ::2, ::2])
    assert torch.all(y[:, :8] == 0) and torch.all(y[:, 24:] == 0)


@pytest.mark.parametrize('frozen', [-1, 0, 1, 2, 3])
def test_frozen_stages(frozen):
    net = CifarResNet(depth=20, frozen_stages=frozen)
    net.train()
    frozen_modules = []
    if frozen >= 0:
        frozen_modules += [net.conv1, net.norm1]
    frozen_modules += [getattr(net, f'layer{i}') for i in range(1, frozen + 1)]
    live_modules = [
        getattr(net, f'layer{i}') for i in range(max(frozen, 0) + 1, 4)
    ]
    if frozen < 0:
        live_modules += [net.conv1, net.norm1]
    for module in frozen_modules:
        for sub in module.modules():
            assert not sub.training
        assert all(not p.requires_grad for p in module.parameters())
    for module in live_modules:
        assert module.training
        assert all(p.requires_grad for p in module.parameters())
    # A training step leaves the frozen part untouched (weights and BN
    # running statistics).
    before = {k: v.clone() for k, v in net.state_dict().items()}
    out = net(torch.randn(4, 3, 16, 16))[0]
    if any(p.requires_grad for p in net.parameters()):
        out.mean().backward()
    for name, value in net.state_dict().items():
        top = name.split('.')[0]
        is_frozen = (frozen >= 0 and top in ('conv1', 'bn1')) or (
            top.startswith('layer') and int(top[5:]) <= frozen
        )
        if is_frozen:
            assert torch.equal(value, before[name]), name
    for name, param in net.named_parameters():
        if not param.requires_grad:
            assert param.grad is None, name


def test_norm_eval_keeps_batchnorm_in_eval_mode():
    net = CifarResNet(depth=20, norm_eval=True)
    net.train()
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(not m.training for m in bns)
    assert net.layer1.training


def test_zero_init_residual():
    net = CifarResNet(depth=20, zero_init_residual=True)
    net.init_weights()
    assert torch.all(net.layer2[0].norm2.weight == 0)
    assert torch.all(net.layer2[0].norm1.weight == 1)


@pytest.mark.parametrize(
    'kwargs',
    [
        dict(depth=18),
        dict(depth=33),
        dict(shortcut_type='C'),
        dict(out_indices=(3,)),
        dict(frozen_stages=4),
        dict(stage_channels=(16, 32)),
    ],
)
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError, match='CifarResNet'):
        CifarResNet(**kwargs)


def test_builds_in_an_image_classifier():
    model = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='CifarResNet', depth=32),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(
                type='LinearClsHead',
                num_classes=100,
                in_channels=64,
                loss=dict(type='CrossEntropyLoss'),
            ),
        )
    )
    model.init_weights()
    assert isinstance(model.backbone, CifarResNet)
    # 463,504 backbone + 64 * 100 + 100 classifier.
    assert count(model) == 470_004
    logits = model(torch.rand(2, 3, 32, 32), mode='tensor')
    assert logits.shape == (2, 100)
