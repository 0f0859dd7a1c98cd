"""Stage two's loops: epochs on features the frozen trunk computed once, and
each validation before the epoch's checkpoint (docs/architecture.md, "Stage
two").

At its first run each loop passes the trunk once over its dataset into
``<cache_dir>/<key>.pth`` (:func:`feature_cache_key`; built once,
:func:`~glag_mm.engine.files.build_once`) and iterates a loader over the
mapped features that draws the same indices. It refuses a random transform,
a batch augmentation, or a trainable trunk parameter.
"""

import bisect
import os.path as osp
from typing import Optional, Union

import torch
from mmengine.dataset import default_collate
from mmengine.runner import EpochBasedTrainLoop, TestLoop, ValLoop
from mmpretrain.registry import LOOPS
from torch.utils.data import DataLoader

from ..core.checks import check_choice
from ..core.file_stamp import seal
from ..datasets.feature_dataset import FeatureTensorDataset
from ..models.stage_two_classifier import StageTwoClassifier
from ..safe_load import load_checkpoint_file
from .feature_cache import (
    check_frozen_trunk,
    feature_cache_key,
    find_random_transforms,
    gather_shards,
    iter_trunk_features,
    unwrap,
)
from .files import build_once


def cache_settings(cache: Union[bool, dict], owner: str) -> Optional[dict]:
    """``cache``: True / False, or dict(dtype, cache_dir, progress)."""
    if cache is False:
        return None
    settings = dict(dtype=None, cache_dir=None, progress=True)
    if not isinstance(cache, (bool, dict)):
        raise TypeError(f'{owner}: cache must be a bool or a dict')
    extra = cache if isinstance(cache, dict) else {}
    unknown = sorted(set(extra) - set(settings))
    if unknown:
        raise ValueError(
            f'{owner}: cache takes dtype, cache_dir and progress, got '
            f'{unknown}'
        )
    settings.update(extra)
    dtypes = (None, 'float32', 'float16')
    check_choice('cache dtype', settings['dtype'], dtypes, owner)
    if not isinstance(settings['cache_dir'], (str, type(None))):
        raise TypeError(
            f'{owner}: cache_dir must be None or a directory path, got '
            f'{settings["cache_dir"]!r}'
        )
    return settings


def _check_cacheable(model, loader, owner: str) -> None:
    random = find_random_transforms(loader.dataset)
    if random:
        raise ValueError(
            f'{owner}: the pipeline has random transforms {random}; a cache '
            'would freeze one draw of them. Use a deterministic pipeline in '
            'stage two (e.g. the test pipeline) or set cache=False.'
        )
    if not isinstance(model, StageTwoClassifier):
        raise TypeError(
            f'{owner}: cached features need a model that takes them; set '
            f"model.type='StageTwoClassifier' (not {type(model).__name__}) "
            'or set cache=False.'
        )
    if getattr(model.image_preprocessor, 'batch_augments', None) is not None:
        raise ValueError(
            f'{owner}: the data preprocessor has batch augmentations (mixup '
            '/ cutmix); remove them or set cache=False.'
        )
    check_frozen_trunk(model, owner, 'to cache the trunk features')


def cached_features(runner, loader, desc: str, settings: dict):
    """The loader's dataset as a :class:`FeatureTensorDataset`, mapped from
    its file (written first where no rank finds it)."""
    model = unwrap(runner.model)
    dataset, num = loader.dataset, len(loader.dataset)
    dtype = settings['dtype'] and getattr(torch, settings['dtype'])
    cache_dir = settings['cache_dir'] or osp.join(
        runner.work_dir, 'feature_cache'
    )
    key = feature_cache_key(model, dataset, dtype)
    path = osp.join(cache_dir, f'{key}.pth')

    def build():
        feats, labels = [], []
        for f, y, _ in iter_trunk_features(
            model,
            dataset,
            batch_size=loader.batch_size or 1,
            collate_fn=loader.collate_fn,
            num_workers=loader.num_workers,
            progress=settings['progress'],
            desc=desc,
        ):
            feats.append(f if dtype is None else f.to(dtype))
            labels.append(y)
        device = next(iter(model.parameters())).device
        feats = torch.cat(feats) if feats else torch.zeros(0, 0)
        labels = torch.cat(labels) if labels else torch.zeros(0)
        state = dict(
            features=gather_shards(feats.to(device), num).cpu(),
            labels=gather_shards(labels.long().to(device), num).cpu(),
        )
        return seal(state, key)  # the key and the tensors' CRC-32

    what = f'feature cache of the {desc}'
    build_once(path, key, what, build, torch.save, runner.logger)
    state = load_checkpoint_file(path, 'cpu', mmap=True, crc=False)
    features = state['features']
    runner.logger.info(
        f'feature cache: {desc} features {tuple(features.shape)} '
        f'({features.numel() * features.element_size() / 2**20:.1f} MiB)'
        f' mapped from {path}'
    )
    metainfo = getattr(dataset, 'metainfo', None)
    return FeatureTensorDataset(features, state['labels'], metainfo)


def feature_loader(runner, loader: DataLoader, desc: str, settings: dict):
    """A loader over the cached features of ``loader``'s dataset that draws
    the same indices (the same batch sampler object)."""
    _check_cacheable(unwrap(runner.model), loader, f'{desc} loop')
    dataset = cached_features(runner, loader, desc, settings)
    return DataLoader(
        dataset, batch_sampler=loader.batch_sampler, collate_fn=default_collate
    )


@LOOPS.register_module()
class ValidateBeforeSaveLoop(EpochBasedTrainLoop):
    """mmengine's ``EpochBasedTrainLoop`` (same arguments), validating
    before the epoch's end hooks, so before its checkpoint."""

    def __init__(self, runner, dataloader, **kwargs) -> None:
        super().__init__(runner, dataloader, **kwargs)
        self._validating = False

    @property
    def epoch(self) -> int:
        """Epochs done; an epoch counts as done while it validates."""
        return super().epoch + int(self._validating)

    def run(self) -> torch.nn.Module:
        self.runner.call_hook('before_train')
        self.before_epochs()
        while self.epoch < self.max_epochs and not self.stop_training:
            self.run_epoch()
        self.runner.call_hook('after_train')
        return self.runner.model

    def before_epochs(self) -> None:
        """After the ``before_train`` hooks, before the first epoch."""

    def run_epoch(self) -> None:
        """One epoch; its validation (when due) before its end hooks."""
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        for idx, data_batch in enumerate(self.dataloader):
            self.run_iter(idx, data_batch)
        self._validating = True
        try:
            done = self.epoch  # the interval in force (dynamic_intervals)
            step = bisect.bisect(self.dynamic_milestones, done + 1)
            self.val_interval = self.dynamic_intervals[step - 1]
            due = done >= self.val_begin and (
                done % self.val_interval == 0 or done == self.max_epochs
            )
            if due and self.runner.val_loop is not None:
                self.runner.val_loop.run()
        finally:
            self._validating = False
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1


class _CachedLoop:
    """A loop that iterates its dataset's cached features once it has run
    :meth:`use_cache` (``cache``: True, False or a dict as
    :class:`StageTwoTrainLoop`'s; None: ``default_cache``)."""

    desc, default_cache = '', True

    def __init__(self, runner, dataloader, *args, cache=None, **kw):
        super().__init__(runner, dataloader, *args, **kw)
        cache = self.default_cache if cache is None else cache
        self.cache = cache_settings(cache, type(self).__name__)

    def use_cache(self) -> None:
        dataset = self.dataloader.dataset
        if self.cache and not isinstance(dataset, FeatureTensorDataset):
            self.dataloader = feature_loader(
                self.runner, self.dataloader, self.desc, self.cache
            )


@LOOPS.register_module()
class StageTwoTrainLoop(_CachedLoop, ValidateBeforeSaveLoop):
    """:class:`ValidateBeforeSaveLoop` on cached trunk features.

    Args:
        cache: True (default), False (run on images), or a dict of
            ``dtype`` (None: the trunk's; ``'float16'`` halves the memory),
            ``cache_dir`` (default ``<work_dir>/feature_cache``; runs that
            share one share a pass) and ``progress`` (a bar on rank 0).
        **kwargs: as ``EpochBasedTrainLoop``.
    """

    desc = 'training set'

    def before_epochs(self) -> None:
        """Cache the training set's features (the hooks' checks first)."""
        if self.epoch < self.max_epochs:
            self.use_cache()


class _CachedEvalLoop(_CachedLoop):
    def run(self) -> dict:
        self.use_cache()
        return super().run()


@LOOPS.register_module()
class StageTwoValLoop(_CachedEvalLoop, ValLoop):
    """mmengine's ``ValLoop`` on cached features of the validation set
    (``cache`` as :class:`StageTwoTrainLoop`'s, default True)."""

    desc, default_cache = 'validation set', True


@LOOPS.register_module()
class StageTwoTestLoop(_CachedEvalLoop, TestLoop):
    """mmengine's ``TestLoop``, on cached features of the test set where
    ``cache`` (as :class:`StageTwoTrainLoop`'s; default False: worth it with
    a shared ``cache_dir``)."""

    desc, default_cache = 'test set', False
