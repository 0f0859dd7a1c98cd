"""The stage-two loops' on-disk feature cache (``cache=dict(cache_dir=...)``,
``StageTwoTestLoop``).

A tiny frozen ResNet-8 on in-memory 8x8 images: the second run with the same
trunk and data loads the features instead of running the trunk, and trains
and tests to exactly the result of computing them; the key changes with a
trunk weight, the labels, the length or the pipeline of the dataset.
"""

import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS, HOOKS, MODELS

import glag_mm  # noqa: F401
from glag_mm.engine.feature_cache import feature_cache_key
from glag_mm.engine.stage_two_loops import cache_settings

COUNTS = [30, 12, 5]
VAL_COUNTS = [4, 4, 4]
TEST_COUNTS = [6, 6, 6]
PIPELINE = [dict(type='PackInputs')]


@DATASETS.register_module(name='DiskCacheBlobs', force=True)
class DiskCacheBlobs(BaseDataset):
    """Class prototypes plus noise, HxWx3 uint8 arrays in memory."""

    def __init__(self, counts, seed=0, **kwargs):
        self.counts, self.seed = list(counts), seed
        classes = [f'c{i}' for i in range(len(self.counts))]
        super().__init__(ann_file='', metainfo=dict(classes=classes), **kwargs)

    def load_data_list(self):
        protos = np.random.default_rng(99).uniform(
            0, 255, (len(self.counts), 8, 8, 3)
        )
        rng = np.random.default_rng(self.seed)
        data = []
        for c, n in enumerate(self.counts):
            for _ in range(n):
                img = protos[c] + rng.normal(0, 50.0, protos[c].shape)
                img = np.clip(img, 0, 255).astype(np.uint8)
                data.append(dict(img=img, gt_label=c))
        return data


@HOOKS.register_module(name='DiskCacheCountHook', force=True)
class DiskCacheCountHook(Hook):
    """Counts the images that went through the backbone."""

    priority = 'VERY_HIGH'
    images = 0

    def before_run(self, runner):
        backbone = runner.model.backbone
        if getattr(backbone, '_counted', False):  # train, then test
            return
        backbone._counted = True

        def count(module, args, output):
            DiskCacheCountHook.images += args[0].shape[0]

        backbone.register_forward_hook(count)


def _loader(counts, seed, shuffle, pipeline=PIPELINE):
    return dict(
        batch_size=8,
        num_workers=0,
        dataset=dict(
            type='DiskCacheBlobs', counts=counts, seed=seed, pipeline=pipeline
        ),
        sampler=dict(type='DefaultSampler', shuffle=shuffle),
    )


def _model():
    return dict(
        type='StageTwoClassifier',
        data_preprocessor=dict(
            type='ClsDataPreprocessor',
            mean=[127.5] * 3,
            std=[127.5] * 3,
            num_classes=3,
        ),
        backbone=dict(  # a random trunk: no stage-one weights
            type='FrozenBackbone',
            backbone=dict(
                type='CifarResNet', depth=8, stage_channels=(4, 8, 16)
            ),
            init_cfg=None,
        ),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=3, in_channels=16),
    )


def _cfg(work_dir, cache_dir):
    cache = dict(progress=False)
    if cache_dir is not None:
        cache.update(cache_dir=str(cache_dir))
    return Config(
        dict(
            default_scope='mmpretrain',
            work_dir=str(work_dir),
            experiment_name=osp.basename(str(work_dir)),
            model=_model(),
            train_dataloader=_loader(COUNTS, 0, True),
            val_dataloader=_loader(VAL_COUNTS, 7, False),
            test_dataloader=_loader(TEST_COUNTS, 11, False),
            val_evaluator=dict(type='Accuracy'),
            test_evaluator=dict(type='Accuracy'),
            train_cfg=dict(
                type='StageTwoTrainLoop',
                max_epochs=3,
                val_interval=1,
                cache=cache,
            ),
            val_cfg=dict(type='StageTwoValLoop', cache=cache),
            test_cfg=dict(
                type='StageTwoTestLoop', cache=cache_dir is not None and cache
            ),
            optim_wrapper=dict(
                optimizer=dict(type='SGD', lr=0.1, momentum=0.9)
            ),
            default_hooks=dict(
                checkpoint=dict(type='CheckpointHook', interval=3),
                logger=dict(type='LoggerHook', interval=50),
            ),
            custom_hooks=[dict(type='DiskCacheCountHook')],
            randomness=dict(seed=0),
            log_level='WARNING',
        )
    )


def _train_and_test(work_dir, cache_dir):
    """(head weight, test metrics, trunk images of train, of test)."""
    runner = Runner.from_cfg(_cfg(work_dir, cache_dir))
    DiskCacheCountHook.images = 0
    runner.train()
    train_images = DiskCacheCountHook.images
    weight = runner.model.head.fc.weight.detach().clone()
    DiskCacheCountHook.images = 0
    metrics = runner.test()
    return weight, metrics, train_images, DiskCacheCountHook.images


@pytest.mark.slow
def test_second_run_loads_and_equals_computing(tmp_path):
    cache_dir = tmp_path / 'cache'
    w_mem, m_mem, n_mem, t_mem = _train_and_test(tmp_path / 'mem', None)
    assert n_mem == sum(COUNTS) + sum(VAL_COUNTS)  # one pass each
    assert t_mem == sum(TEST_COUNTS)  # test cache off: test on images

    w1, m1, n1, t1 = _train_and_test(tmp_path / 'first', cache_dir)
    assert n1 == sum(COUNTS) + sum(VAL_COUNTS)
    assert t1 == sum(TEST_COUNTS)  # computed once, then saved
    files = sorted(os.listdir(cache_dir))
    assert len(files) == 3 and all(f.endswith('.pth') for f in files)

    w2, m2, n2, t2 = _train_and_test(tmp_path / 'second', cache_dir)
    assert (n2, t2) == (0, 0)  # no trunk forward at all
    assert sorted(os.listdir(cache_dir)) == files
    # identical to computing, in memory and on disk
    assert torch.equal(w_mem, w1) and torch.equal(w1, w2)
    assert m_mem == m1 == m2

    # one file per loader: train, val and test features
    saved = [
        torch.load(cache_dir / f, weights_only=True)['features'] for f in files
    ]
    assert sorted(x.shape[0] for x in saved) == sorted(
        sum(c) for c in (COUNTS, VAL_COUNTS, TEST_COUNTS)
    )
    assert all(x.shape[1] == 16 and x.dtype == torch.float32 for x in saved)


def _dataset(counts=COUNTS, seed=0, pipeline=PIPELINE):
    return DATASETS.build(
        dict(
            type='DiskCacheBlobs', counts=counts, seed=seed, pipeline=pipeline
        )
    )


def test_key_changes_with_trunk_and_dataset():
    torch.manual_seed(0)
    model = MODELS.build(_model())
    dataset = _dataset()
    key = feature_cache_key(model, dataset)
    assert key == feature_cache_key(model, _dataset())  # deterministic
    # the head is not part of the key
    with torch.no_grad():
        model.head.fc.weight.add_(1.0)
    assert feature_cache_key(model, dataset) == key
    # one trunk weight
    with torch.no_grad():
        next(model.backbone.parameters()).view(-1)[0] += 1e-3
    changed = feature_cache_key(model, dataset)
    assert changed != key
    with torch.no_grad():
        next(model.backbone.parameters()).view(-1)[0] -= 1e-3
    assert feature_cache_key(model, dataset) == key
    # the data preprocessor's normalisation
    pre = model.image_preprocessor
    pre.mean.add_(1.0)
    assert feature_cache_key(model, dataset) != key
    pre.mean.sub_(1.0)
    assert feature_cache_key(model, dataset) == key
    pre.to_rgb = not pre.to_rgb
    assert feature_cache_key(model, dataset) != key
    pre.to_rgb = not pre.to_rgb
    # labels (same length), length, pipeline, storage dtype
    assert feature_cache_key(model, _dataset([12, 30, 5])) != key
    assert feature_cache_key(model, _dataset([30, 12, 4])) != key
    resized = [dict(type='Resize', scale=(16, 16)), *PIPELINE]
    assert feature_cache_key(model, _dataset(pipeline=resized)) != key
    assert feature_cache_key(model, dataset, torch.float16) != key


def test_cache_settings_are_checked():
    assert cache_settings(False, 'L') is None
    assert cache_settings(True, 'L') == dict(
        dtype=None, cache_dir=None, progress=True
    )
    with pytest.raises(TypeError, match='L: cache_dir must be None or a'):
        cache_settings(dict(cache_dir=3), 'L')
    with pytest.raises(ValueError, match=r"L: cache takes .* \['dir'\]"):
        cache_settings(dict(dir='x'), 'L')
    with pytest.raises(ValueError, match="cache dtype must be .* 'int8'"):
        cache_settings(dict(dtype='int8'), 'L')
