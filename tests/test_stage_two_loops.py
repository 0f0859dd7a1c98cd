"""The stage-two components: ValidateBeforeSaveLoop against mmengine's
EpochBasedTrainLoop, StageTwoClassifier against ImageClassifier, and the
loops' refusals."""

import json

import pytest
import torch
from mmengine.runner import Runner
from mmpretrain.registry import MODELS
from test_posthoc_tau import _runner, tiny_set
from torch.utils.data import DataLoader

import glag_mm  # noqa: F401
from glag_mm.engine.stage_two_loops import feature_loader
from glag_mm.evaluation import POSTHOC_TAU_KEY, set_selected_posthoc_tau
from glag_mm.models.stage_two_classifier import is_feature_batch
from glag_mm.safe_load import load_checkpoint_file


def _train(work_dir, loop):
    """4 epochs, validation at 2, then (interval 1 from epoch 3) 3 and 4,
    a checkpoint per epoch and the best one; post-hoc tau chosen on each
    validation. (No WriteOnceHook: after a new best, mmengine's
    CheckpointHook writes the epoch's checkpoint a second time, under either
    loop.)"""
    set_selected_posthoc_tau(None)
    runner = _runner(
        work_dir,
        train_dataloader=dict(
            dataset=tiny_set(0),
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=8,
            num_workers=0,
        ),
        train_cfg=dict(
            type=loop,
            max_epochs=4,
            val_begin=2,
            val_interval=2,
            dynamic_intervals=[(3, 1)],
        ),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.5, momentum=0.9)),
        param_scheduler=dict(type='StepLR', by_epoch=True, step_size=1),
        default_hooks=dict(
            checkpoint=dict(
                type='CheckpointHook', interval=1, save_best='lt/top1'
            )
        ),
        randomness=dict(seed=0),
    )
    runner.train()
    scalars = work_dir / runner.timestamp / 'vis_data' / 'scalars.json'
    records = [json.loads(line) for line in scalars.read_text().splitlines()]
    val = {r['step']: r['lt/top1'] for r in records if 'lt/top1' in r}
    metas = {
        p.name: load_checkpoint_file(str(p))['meta']
        for p in sorted(work_dir.glob('*.pth'))
    }
    return runner, val, metas


@pytest.mark.slow
def test_validate_before_save_names_everything_as_mmengine(tmp_path):
    _, val, metas = _train(tmp_path / 'mmengine', 'EpochBasedTrainLoop')
    runner, val2, metas2 = _train(tmp_path / 'ours', 'ValidateBeforeSaveLoop')
    # the same validations, logged at the same epochs with the same scores,
    # the same checkpoint files (best included) with the same epoch / iter
    assert sorted(val) == [2, 3, 4] and val2 == val
    assert sorted(metas2) == sorted(metas)
    assert any(name.startswith('best_') for name in metas)
    for name, meta in metas.items():
        assert (meta['epoch'], meta['iter']) == (
            metas2[name]['epoch'],
            metas2[name]['iter'],
        ), name
    assert runner.epoch == 4
    # epoch k's checkpoint holds the tau of epoch k's validation (under
    # mmengine's loop, which saves first, only where a new best made its
    # CheckpointHook save the epoch again)
    for k in (2, 3, 4):
        mine = metas2[f'epoch_{k}.pth'][POSTHOC_TAU_KEY]
        assert mine['iter'] == metas2[f'epoch_{k}.pth']['iter']
        assert mine['epoch'] == k


def _stage_one_model():
    return dict(
        type='ImageClassifier',
        data_preprocessor=dict(mean=[127.5] * 3, std=[60.0] * 3, to_rgb=True),
        backbone=dict(type='CifarResNet', depth=8, stage_channels=(4, 8, 16)),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=3, in_channels=16),
    )


def test_stage_two_classifier_is_the_stage_one_model_frozen():
    torch.manual_seed(0)
    one = MODELS.build(_stage_one_model())
    two = MODELS.build(dict(_stage_one_model(), type='StageTwoClassifier'))
    assert type(two.backbone).__name__ == 'FrozenBackbone'
    # the stage-one keys: a stage-one checkpoint loads as it is
    assert set(two.state_dict()) == set(one.state_dict())
    two.load_state_dict(one.state_dict())
    assert not any(p.requires_grad for p in two.backbone.parameters())
    two.train()
    assert two.head.training and not two.backbone.training
    images = torch.randint(0, 256, (5, 3, 8, 8), dtype=torch.uint8)
    batch = dict(inputs=list(images))
    one.eval()
    with torch.no_grad():
        data = one.data_preprocessor(batch, False)
        expected = one.extract_feat(data['inputs'])[-1]
        feats = two.extract_feat(two.data_preprocessor(batch)['inputs'])[-1]
    torch.testing.assert_close(feats, expected)
    # a feature batch (N, D) goes to the head as it is
    assert is_feature_batch(feats) and not is_feature_batch(images)
    cached = two.data_preprocessor(dict(inputs=feats, data_samples=None))
    assert torch.equal(cached['inputs'], feats)
    with torch.no_grad():
        logits = two(cached['inputs'], mode='tensor')
    torch.testing.assert_close(logits, one.head.fc(expected))
    with pytest.raises(TypeError, match='FrozenBackbone: backbone must be a'):
        MODELS.build(
            dict(
                _stage_one_model(),
                type='StageTwoClassifier',
                backbone='ResNet',
            )
        )
    # the image preprocessor's settings read through
    assert two.data_preprocessor.to_rgb is True
    assert torch.equal(two.data_preprocessor.std, one.data_preprocessor.std)


@pytest.mark.parametrize('problem', ['model', 'random', 'trainable'])
def test_cache_refusals_name_the_fix(tmp_path, problem):
    model = _stage_one_model()
    if problem != 'model':
        model['type'] = 'StageTwoClassifier'
        model['backbone'] = dict(
            type='FrozenBackbone', backbone=model['backbone'], init_cfg=None
        )
    runner = Runner(
        model=model, work_dir=str(tmp_path), default_scope='mmpretrain'
    )
    dataset = tiny_set(0)
    dataset.pipeline = [dict(type='PackInputs')]
    if problem == 'random':
        dataset.pipeline.insert(0, dict(type='RandomFlip', prob=0.5))
    if problem == 'trainable':
        next(runner.model.backbone.parameters()).requires_grad_(True)
    expected = {
        'model': "model.type='StageTwoClassifier' \\(not ImageClassifier",
        'random': "random transforms \\['RandomFlip'\\]",
        'trainable': "1 parameters are trainable, e.g. \\['backbone.",
    }[problem]
    with pytest.raises((TypeError, ValueError), match=expected):
        feature_loader(
            runner, DataLoader(dataset), 'training set', dict(progress=False)
        )
