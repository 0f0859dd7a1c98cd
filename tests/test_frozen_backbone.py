"""FrozenBackbone: any mmpretrain backbone frozen as a module, loaded from
the run's stage-one checkpoint (one config key)."""

import pytest
import torch
from mmengine.logging import MessageHub
from mmpretrain.registry import MODELS

import glag_mm  # noqa: F401
from glag_mm.models.backbones.frozen_backbone import STAGE_ONE_KEY

VIT = dict(
    type='VisionTransformer',
    arch=dict(
        embed_dims=16, num_layers=2, num_heads=2, feedforward_channels=32
    ),
    img_size=32,
    patch_size=16,
    out_type='cls_token',
    drop_rate=0.5,
    drop_path_rate=0.5,
)
CONVNEXT = dict(
    type='ConvNeXt',
    arch=dict(depths=[1, 1, 1, 1], channels=[8, 16, 16, 16]),
    drop_path_rate=0.5,
    gap_before_final_norm=True,
)


@pytest.mark.parametrize('backbone', [VIT, CONVNEXT], ids=['vit', 'convnext'])
def test_frozen_whatever_train_is_called_with(backbone):
    torch.manual_seed(0)
    plain = MODELS.build(backbone)
    frozen = MODELS.build(dict(type='FrozenBackbone', backbone=backbone))
    # the same keys as the plain backbone: a stage-one backbone.* loads
    assert list(frozen.state_dict()) == list(plain.state_dict())
    frozen.load_state_dict(plain.state_dict())
    frozen.train()
    assert not frozen.training and not frozen.trunk.training
    assert not any(p.requires_grad for p in frozen.parameters())
    x = torch.randn(3, 3, 32, 32)
    out = frozen(x)[-1]
    assert not out.requires_grad
    # dropout / DropPath off: deterministic and equal to the plain trunk in
    # eval mode, though the model was put in training mode
    torch.testing.assert_close(out, frozen(x)[-1])
    plain.eval()
    torch.testing.assert_close(out, plain(x)[-1])


def test_loads_stage_one_backbone_from_the_run_key(tmp_path):
    torch.manual_seed(1)
    stage_one = MODELS.build(VIT)
    state = {f'backbone.{k}': v for k, v in stage_one.state_dict().items()}
    state['head.fc.weight'] = torch.zeros(2, 16)
    path = tmp_path / 'epoch_1.pth'
    torch.save(dict(state_dict=state, meta={}), path)
    frozen = MODELS.build(dict(type='FrozenBackbone', backbone=VIT))
    # a hub of its own (the current one may be an earlier Runner's, whose
    # key was published with resumed=False and cannot change that)
    hub = MessageHub.get_instance(f'frozen_backbone_{tmp_path.name}')
    hub.update_info(STAGE_ONE_KEY, None)
    with pytest.raises(FileNotFoundError, match='stage_one_checkpoint=PATH'):
        frozen.init_weights()
    hub.update_info(STAGE_ONE_KEY, str(tmp_path / 'missing.pth'))
    frozen._is_init = False
    with pytest.raises(FileNotFoundError, match='does not exist'):
        frozen.init_weights()
    hub.update_info(STAGE_ONE_KEY, str(path))
    frozen._is_init = False
    frozen.init_weights()
    for key, value in stage_one.state_dict().items():
        torch.testing.assert_close(frozen.state_dict()[key], value)
    hub.update_info(STAGE_ONE_KEY, None)


def test_refuses_a_non_backbone():
    with pytest.raises(TypeError, match="backbone config dict with a 'type'"):
        MODELS.build(dict(type='FrozenBackbone', backbone='ResNet'))


def test_stage_one_state_selects_a_part_and_names_a_missing_one(tmp_path):
    from glag_mm.models.backbones import stage_one_state

    weight = torch.arange(6.0).view(2, 3)
    path = tmp_path / 'epoch_1.pth'
    # a model saved from inside a DDP wrapper: 'module.' is dropped
    state = {'module.head.fc.weight': weight, 'backbone.w': torch.ones(1)}
    torch.save(dict(state_dict=state, meta={}), path)
    for prefix in ('head.', 'head'):
        part = stage_one_state(str(path), prefix)
        assert list(part) == ['fc.weight']
        assert torch.equal(part['fc.weight'], weight)
    whole = stage_one_state(str(path))
    assert sorted(whole) == ['backbone.w', 'head.fc.weight']
    with pytest.raises(ValueError, match="has no 'neck.' weights"):
        stage_one_state(str(path), 'neck.', owner='StageOne init (neck.*)')
