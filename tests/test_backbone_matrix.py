"""Stage two on every trunk family: the backbone matrix.

For a BatchNorm ResNet, a ``VisionTransformer`` (cls token, dropout and
DropPath > 0), a ``ConvNeXt`` (DropPath > 0, LayerNorm-ended) and a
``MobileNetV2`` (linear bottleneck, signed features): stage one trains one
epoch with GraLoss; stage two (the harness of test_stage_two:
``StageTwoClassifier`` and the stage-two loops, only the backbone dict
changed) runs cRT on cached
features and GLAG cached and uncached with the head's defaults
(``tukey_lambda=0.5``, which the head replaces by 1 on signed features).
Cached equals uncached, the trunk is stage one's, and the export equals the
model.
"""

import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from test_stage_two import (
    COUNTS,
    _state,
    stage_one_cfg,
    stage_two_cfg,
)

from glag_tools import add_class_counts_hook, resolve_stage_one_checkpoint
from glag_tools.export import export_classifier, sample_batch

SIZE = 32
GAP = dict(type='GlobalAveragePooling')
BACKBONES = {
    'resnet_bn': (
        dict(
            type='ResNet',
            depth=18,
            num_stages=1,
            out_indices=(0,),
            stem_channels=8,
            base_channels=8,
            strides=(1,),
            dilations=(1,),
        ),
        GAP,
        8,
    ),
    'vit_cls_token': (
        dict(
            type='VisionTransformer',
            arch=dict(
                embed_dims=16,
                num_layers=1,
                num_heads=2,
                feedforward_channels=32,
            ),
            img_size=SIZE,
            patch_size=8,
            out_type='cls_token',
            drop_rate=0.1,
            drop_path_rate=0.1,
        ),
        None,
        16,
    ),
    'convnext': (
        dict(
            type='ConvNeXt',
            arch=dict(depths=[1, 1, 1, 1], channels=[8, 8, 8, 8]),
            drop_path_rate=0.1,
            gap_before_final_norm=True,
        ),
        None,
        8,
    ),
    'mobilenet_v2': (
        dict(type='MobileNetV2', widen_factor=0.25, out_indices=(6,)),
        GAP,
        80,
    ),
}


def _with_trunk(cfg, backbone, neck, dim):
    """The same backbone dict in both stages (StageTwoClassifier wraps it
    in FrozenBackbone)."""
    cfg['model'].update(backbone=backbone, neck=neck)
    cfg['model']['head']['in_channels'] = dim
    for key in ('train_dataloader', 'val_dataloader'):
        cfg[key]['dataset']['size'] = SIZE
    return cfg


def _run(cfg, work_dir, stage_one=None):
    cfg = Config(cfg)
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = osp.basename(str(work_dir))
    add_class_counts_hook(cfg)
    resolve_stage_one_checkpoint(cfg, stage_one)
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


@pytest.mark.slow
@pytest.mark.parametrize('name', list(BACKBONES))
def test_stage_two_on_trunk(name, tmp_path):
    backbone, neck, dim = BACKBONES[name]
    one = _with_trunk(stage_one_cfg(), backbone, neck, dim)
    one['model']['head']['loss'] = dict(
        type='GradualBalancedLoss', num_classes=len(COUNTS)
    )
    one['train_cfg']['max_epochs'] = 1
    one['param_scheduler']['T_max'] = 1
    _run(one, tmp_path / 'one')
    ckpt = str(tmp_path / 'one' / 'epoch_1.pth')
    stage_one = _state(ckpt)

    def stage_two(tag, head='AFGHead', hooks=True, cache=True):
        cfg = stage_two_cfg(head=head, hooks=hooks, cache=cache)
        cfg = _with_trunk(cfg, backbone, neck, dim)
        cfg['train_cfg']['max_epochs'] = 2
        cfg['param_scheduler']['T_max'] = 2
        return _run(cfg, tmp_path / tag, ckpt)

    crt = stage_two('crt', head='LinearClsHead', hooks=False)
    cached = stage_two('glag_cached')
    plain = stage_two('glag_plain', cache=False)
    for runner in (crt, cached, plain):
        model = runner.model
        assert not model.backbone.training  # eval whatever train() did
        for key, value in model.backbone.state_dict().items():
            torch.testing.assert_close(value, stage_one[f'backbone.{key}'])
    a, b = plain.model.head, cached.model.head
    torch.testing.assert_close(a.statistics.means, b.statistics.means)
    torch.testing.assert_close(a.fc.weight, b.fc.weight, atol=1e-5, rtol=1e-4)
    assert torch.equal(a.confidence, b.confidence)
    # LayerNorm / linear-bottleneck ends give signed features: lam = 1
    signed = name != 'resnet_bn'
    assert bool(a.signed_features) == bool(b.signed_features) == signed
    log = open(cached.logger.log_file).read()
    assert ('Tukey lambda 1 instead of 0.5' in log) == signed
    # the export computes what the model computes
    cfg = cached.cfg
    batch = sample_batch(cfg, 8)
    info = export_classifier(
        cached.model, cfg, batch, str(tmp_path / 'model.pt')
    )
    assert info['max_abs_diff'] <= 1e-5
