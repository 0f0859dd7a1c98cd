"""Stage two on features computed once by the frozen trunk.

Where the training pipeline has no random transform, the trunk's output for
a sample is the same in every epoch, so it can be computed once.
:class:`FeatureCacheHook` does that before training: it runs the trunk over
the training (and validation) set once, then lets the epochs run on a
:class:`~glag_mm.engine.feature_cache.FeatureTensorDataset` through the
*same* model, whose trunk is bypassed (``extract_feat`` returns the cached
features), so the head, loss, hooks, optimiser and checkpoints are the very
objects of the uncached run; checkpoints keep the trunk's weights. The
uncached and cached runs agree to float tolerance (the trunk's norm layers
must be in eval mode, which is checked).
"""

import os.path as osp
from typing import Callable, List, Optional

import torch
from mmengine.dist import broadcast_object_list
from mmengine.hooks import Hook
from mmengine.runner.loops import _InfiniteDataloaderIterator
from mmpretrain.registry import HOOKS
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.dropout import _DropoutNd
from torch.utils.data import BatchSampler, DataLoader, Dataset

from ..safe_load import load_checkpoint_file
from .feature_cache import (
    FeatureTensorDataset,
    feature_cache_key,
    feature_collate,
    find_random_transforms,
    gather_shards,
    iter_trunk_features,
    trunk_modules,
    unwrap,
)
from .shared_file import write_once_per_node


def _loader_like(loader: DataLoader, dataset: Dataset) -> DataLoader:
    """A loader over ``dataset`` drawing the same indices as ``loader``."""
    batch_sampler = loader.batch_sampler
    if type(batch_sampler) is BatchSampler:
        return DataLoader(
            dataset,
            batch_size=batch_sampler.batch_size,
            sampler=batch_sampler.sampler,
            drop_last=batch_sampler.drop_last,
            collate_fn=feature_collate,
        )
    return DataLoader(
        dataset, batch_sampler=batch_sampler, collate_fn=feature_collate
    )


@HOOKS.register_module()
class FeatureCacheHook(Hook):
    """Run stage two on features computed once by the frozen trunk.

    Before training, the trunk (backbone + neck) runs once over the training
    set, and over the validation set when ``cache_val``; then the training
    and validation loaders are replaced by loaders over
    :class:`FeatureTensorDataset` that draw the same indices (same sampler
    object), and the model's ``data_preprocessor`` and ``extract_feat`` are
    bypassed for the rest of training. After training everything is
    restored, so testing runs on images. Checkpoints are unchanged.

    It refuses (``ValueError``) when the training pipeline holds a random
    transform or the data preprocessor a batch augmentation (a cache would
    freeze one draw), when a trunk parameter is trainable, or when a trunk
    norm / dropout layer would run in training mode.

    Args:
        cache_val: also cache the validation set (its pipeline is
            deterministic); otherwise validation is not possible while the
            cache is active, so this must stay True when validating.
        dtype: storage dtype of the cache (default: the trunk's, float32;
            ``'float16'`` halves the memory at a small loss of precision).
        progress: draw a progress bar on rank 0.
        cache_dir: the directory of the feature files (default
            ``<work_dir>/feature_cache``), one ``<key>.pth`` per loader
            (:func:`feature_cache_key`), written once per machine through an
            atomic rename and memory-mapped by every rank. A run that finds
            the file loads it (bit-identical to computing it): point runs at
            one ``cache_dir`` to share a pass. Stale files are never used
            (the key changes) nor deleted.
        cache_test: also run ``tools/test.py`` (``Runner.test``) on cached
            test-set features (worth it with ``cache_dir``, when several
            runs test on the same frozen trunk); the test pipeline must be
            deterministic.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(
        self,
        cache_val: bool = True,
        dtype: Optional[str] = None,
        progress: bool = True,
        cache_dir: Optional[str] = None,
        cache_test: bool = False,
    ) -> None:
        if cache_dir is not None and not isinstance(cache_dir, str):
            raise TypeError(
                'FeatureCacheHook: cache_dir must be None or a directory '
                f'path, got {cache_dir!r}'
            )
        self.cache_dir = cache_dir
        self.cache_test = cache_test
        if dtype is not None and dtype not in ('float32', 'float16'):
            raise ValueError(
                f"FeatureCacheHook: dtype must be None, 'float32' or "
                f"'float16', got {dtype!r}"
            )
        self.cache_val = cache_val
        self.dtype = None if dtype is None else getattr(torch, dtype)
        self.progress = progress
        self._restore: List[Callable[[], None]] = []

    # checks ---------------------------------------------------------------
    def _check(self, runner, model) -> None:
        loader = runner.train_loop.dataloader
        random = find_random_transforms(loader.dataset)
        if random:
            raise ValueError(
                'FeatureCacheHook: the training pipeline has random '
                f'transforms {random}; a cache would freeze one draw of '
                'them. Use a deterministic pipeline in stage two (e.g. the '
                'test pipeline) or remove FeatureCacheHook.'
            )
        pre = model.data_preprocessor
        if getattr(pre, 'batch_augments', None) is not None:
            raise ValueError(
                'FeatureCacheHook: the data preprocessor has batch '
                'augmentations (mixup / cutmix); remove them or remove '
                'FeatureCacheHook.'
            )
        trunk = trunk_modules(model)
        trainable = [
            f'{prefix}.{name}'
            for prefix, module in trunk
            for name, p in module.named_parameters()
            if p.requires_grad
        ]
        if trainable:
            raise ValueError(
                'FeatureCacheHook: the trunk must be frozen to cache its '
                f'features, but {trainable[:3]} ({len(trainable)} in all) '
                'require grad; set frozen_stages to all stages.'
            )
        was_training = model.training
        model.train()
        live = [
            f'{prefix}.{name}'
            for prefix, module in trunk
            for name, m in module.named_modules()
            if isinstance(m, (_BatchNorm, _DropoutNd)) and m.training
        ]
        model.train(was_training)
        if live:
            raise ValueError(
                'FeatureCacheHook: trunk layers run in training mode '
                f'({live[:3]}), so features depend on the batch; set '
                'norm_eval=True (and frozen_stages to all stages).'
            )

    # caching --------------------------------------------------------------
    def _cache(self, runner, model, loader, desc) -> FeatureTensorDataset:
        dataset = loader.dataset
        cache_dir = self.cache_dir
        if cache_dir is None:
            cache_dir = osp.join(runner.work_dir, 'feature_cache')
        key = feature_cache_key(model, dataset, self.dtype)
        path = osp.join(cache_dir, f'{key}.pth')
        found = [osp.isfile(path)]  # rank 0 decides for every rank
        broadcast_object_list(found)
        if not found[0]:
            cached = self._compute(runner, model, loader, desc)
            state = dict(features=cached.features, labels=cached.labels)
            if write_once_per_node(
                path, lambda tmp: torch.save(dict(state, key=key), tmp)
            ):
                runner.logger.info(f'FeatureCacheHook: saved {desc} to {path}')
            del cached, state  # every rank maps the one file instead
        state = load_checkpoint_file(path, map_location='cpu', mmap=True)
        runner.logger.info(
            f'FeatureCacheHook: {desc} features '
            f'{tuple(state["features"].shape)} mapped from {path}'
        )
        return FeatureTensorDataset(
            state['features'],
            state['labels'],
            getattr(dataset, 'metainfo', None),
        )

    def _compute(self, runner, model, loader, desc) -> FeatureTensorDataset:
        dataset = loader.dataset
        feats, labels = [], []
        for f, y, _ in iter_trunk_features(
            model,
            dataset,
            batch_size=loader.batch_size or 1,
            collate_fn=loader.collate_fn,
            num_workers=loader.num_workers,
            progress=self.progress,
            desc=desc,
        ):
            feats.append(f if self.dtype is None else f.to(self.dtype))
            labels.append(y)
        device = next(iter(model.parameters())).device
        if feats:
            feats = torch.cat(feats)
            labels = torch.cat(labels)
        else:
            feats = torch.zeros(0, 0, device=device)
            labels = torch.zeros(0, dtype=torch.long, device=device)
        feats = gather_shards(feats, len(dataset)).cpu()
        labels = gather_shards(labels, len(dataset)).cpu()
        runner.logger.info(
            f'FeatureCacheHook: cached {desc}: {tuple(feats.shape)} '
            f'({feats.numel() * feats.element_size() / 2**20:.1f} MiB)'
        )
        return FeatureTensorDataset(
            feats, labels, getattr(dataset, 'metainfo', None)
        )

    def _swap_loader(self, loop, dataset) -> None:
        old = loop.dataloader
        loop.dataloader = _loader_like(old, dataset)
        old_iterator = getattr(loop, 'dataloader_iterator', None)
        if old_iterator is not None:
            loop.dataloader_iterator = _InfiniteDataloaderIterator(
                loop.dataloader
            )

        def restore():
            loop.dataloader = old
            if old_iterator is not None:
                loop.dataloader_iterator = old_iterator

        self._restore.append(restore)

    def _bypass_trunk(self, model) -> None:
        pre = model.data_preprocessor

        def extract_feat(inputs, stage='neck'):
            return (inputs,)

        def preprocess(data, training=False):
            inputs = pre.cast_data(data['inputs'])
            if inputs.device.type == 'cpu':  # the samples are there already
                return dict(data, inputs=inputs)
            return pre.cast_data(data)

        model.extract_feat = extract_feat
        pre.forward = preprocess

        def restore():
            del model.extract_feat
            del pre.forward

        self._restore.append(restore)

    def before_train(self, runner) -> None:
        model = unwrap(runner.model)
        self._check(runner, model)
        train_set = self._cache(
            runner, model, runner.train_loop.dataloader, 'training set'
        )
        val_loop = runner.val_loop  # built by now, or None
        val_set = None
        if val_loop is not None and self.cache_val:
            val_set = self._cache(
                runner, model, val_loop.dataloader, 'validation set'
            )
        elif val_loop is not None:
            raise ValueError(
                'FeatureCacheHook: cache_val=False but the run validates; '
                'the bypassed trunk cannot read images. Set cache_val=True.'
            )
        self._swap_loader(runner.train_loop, train_set)
        if val_set is not None:
            self._swap_loader(val_loop, val_set)
        self._bypass_trunk(model)

    def _undo(self) -> None:
        """Put back the loaders and the trunk, last change first."""
        while self._restore:
            self._restore.pop()()

    def after_train(self, runner) -> None:
        self._undo()

    def before_test(self, runner) -> None:
        """With ``cache_test``: test on cached (or disk-loaded) features."""
        if not self.cache_test:
            return
        model = unwrap(runner.model)
        loop = runner.test_loop
        random = find_random_transforms(loop.dataloader.dataset)
        if random:
            raise ValueError(
                f'FeatureCacheHook: the test pipeline has random transforms '
                f'{random}; set cache_test=False.'
            )
        test_set = self._cache(runner, model, loop.dataloader, 'test set')
        self._swap_loader(loop, test_set)
        self._bypass_trunk(model)

    def after_test(self, runner) -> None:
        self._undo()
