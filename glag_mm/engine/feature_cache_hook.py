"""Stage two on features computed once by the frozen trunk."""

import os.path as osp
from typing import Callable, List, Optional

import torch
from mmengine.dataset import default_collate
from mmengine.dist import broadcast_object_list
from mmengine.hooks import Hook
from mmengine.runner.loops import _InfiniteDataloaderIterator
from mmpretrain.registry import HOOKS
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.dropout import _DropoutNd
from torch.utils.data import BatchSampler, DataLoader

from ..core.file_stamp import seal
from .feature_cache import (
    FeatureTensorDataset,
    check_frozen_trunk,
    feature_cache_key,
    find_random_transforms,
    gather_shards,
    iter_trunk_features,
    trunk_modules,
    unwrap,
)
from .files import (
    read_stage_two_file,
    usable_stage_two_file,
    write_once_per_node,
)


def _check_deterministic(loader, what: str, fix: str) -> None:
    random = find_random_transforms(loader.dataset)
    if random:
        raise ValueError(
            f'FeatureCacheHook: the {what} pipeline has random transforms '
            f'{random}; a cache would freeze one draw of them. {fix}'
        )


@HOOKS.register_module()
class FeatureCacheHook(Hook):
    """Run stage two on features computed once by the frozen trunk.

    Where the training pipeline has no random transform, the trunk's output
    for a sample is the same in every epoch. Before training, the trunk
    (backbone + neck) runs once over the training and validation sets; their
    loaders are replaced by loaders over :class:`FeatureTensorDataset` that
    draw the same indices (same sampler object), and the *same* model's
    ``data_preprocessor`` and ``extract_feat`` are bypassed, so the head,
    loss, hooks, optimiser and checkpoints (trunk weights included) are
    those of the uncached run, which it matches to float tolerance. After
    training everything is restored, so testing runs on images.

    It refuses (``ValueError``) a random transform in the training pipeline
    or a batch augmentation (a cache would freeze one draw), a trainable
    trunk parameter, or a trunk norm / dropout layer in training mode.

    Args:
        dtype: storage dtype of the cache (default: the trunk's, float32;
            ``'float16'`` halves the memory at a small loss of precision).
        progress: draw a progress bar on rank 0.
        cache_dir: the directory of the feature files (default
            ``<work_dir>/feature_cache``), one ``<key>.pth`` per loader
            (:func:`feature_cache_key`), written once per machine through an
            atomic rename and memory-mapped by every rank. A run that finds
            the file loads it (bit-identical to computing it), so runs that
            share a ``cache_dir`` share a pass. Stale files are never used
            (the key changes) nor deleted.
        cache_test: also test (``Runner.test``) on cached features of the
            (deterministic) test set, worth it with a shared ``cache_dir``.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(
        self,
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
        if dtype not in (None, 'float32', 'float16'):
            raise ValueError(
                f"FeatureCacheHook: dtype must be None, 'float32' or "
                f"'float16', got {dtype!r}"
            )
        self.cache_dir = cache_dir
        self.cache_test = cache_test
        self.dtype = None if dtype is None else getattr(torch, dtype)
        self.progress = progress
        self._restore: List[Callable[[], None]] = []

    def _check(self, runner, model) -> None:
        _check_deterministic(
            runner.train_loop.dataloader,
            'training',
            'Use a deterministic pipeline in stage two (e.g. the test '
            'pipeline) or remove FeatureCacheHook.',
        )
        if (
            getattr(model.data_preprocessor, 'batch_augments', None)
            is not None
        ):
            raise ValueError(
                'FeatureCacheHook: the data preprocessor has batch '
                'augmentations (mixup / cutmix); remove them or remove '
                'FeatureCacheHook.'
            )
        check_frozen_trunk(
            model, 'FeatureCacheHook', 'to cache the trunk features'
        )
        was_training = model.training
        model.train()
        live = [
            f'{prefix}.{name}'
            for prefix, module in trunk_modules(model)
            for name, m in module.named_modules()
            if isinstance(m, (_BatchNorm, _DropoutNd)) and m.training
        ]
        model.train(was_training)
        if live:
            raise ValueError(
                'FeatureCacheHook: trunk layers run in training mode '
                f'({live[:3]}), so features depend on the batch; wrap the '
                f'{type(model.backbone).__name__} backbone in FrozenBackbone '
                "(model.backbone=dict(type='FrozenBackbone', backbone=...)), "
                'which stays in eval mode.'
            )

    def _cache(self, runner, model, loader, desc) -> FeatureTensorDataset:
        """The loader's features, mapped from their file (written first by
        one pass over the trunk where rank 0 does not find it)."""
        dataset, num = loader.dataset, len(loader.dataset)
        cache_dir = self.cache_dir or osp.join(
            runner.work_dir, 'feature_cache'
        )
        key = feature_cache_key(model, dataset, self.dtype)
        path = osp.join(cache_dir, f'{key}.pth')
        what = f'feature cache of the {desc}'
        found = [usable_stage_two_file(path, key, what, runner.logger)]
        broadcast_object_list(found)
        if not found[0]:
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
            feats = torch.cat(feats) if feats else torch.zeros(0, 0)
            labels = torch.cat(labels) if labels else torch.zeros(0)
            state = dict(
                features=gather_shards(feats.to(device), num).cpu(),
                labels=gather_shards(labels.long().to(device), num).cpu(),
            )
            state = seal(state, key)  # the key and the tensors' CRC-32
            if write_once_per_node(path, lambda tmp: torch.save(state, tmp)):
                runner.logger.info(f'FeatureCacheHook: saved {desc} to {path}')
            del feats, labels, state  # every rank maps the one file instead
        state = read_stage_two_file(path)
        features = state['features']
        runner.logger.info(
            f'FeatureCacheHook: {desc} features {tuple(features.shape)} '
            f'({features.numel() * features.element_size() / 2**20:.1f} MiB)'
            f' mapped from {path}'
        )
        metainfo = getattr(dataset, 'metainfo', None)
        return FeatureTensorDataset(features, state['labels'], metainfo)

    def _use_cache(self, runner, model, loop, desc) -> None:
        """Run ``loop`` on cached features, drawing the same indices."""
        old = loop.dataloader
        dataset = self._cache(runner, model, old, desc)
        batch_sampler = old.batch_sampler
        if type(batch_sampler) is BatchSampler:
            loop.dataloader = DataLoader(
                dataset,
                batch_size=batch_sampler.batch_size,
                sampler=batch_sampler.sampler,
                drop_last=batch_sampler.drop_last,
                collate_fn=default_collate,
            )
        else:
            loop.dataloader = DataLoader(
                dataset,
                batch_sampler=batch_sampler,
                collate_fn=default_collate,
            )
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
        """Cached features pass the trunk as they are (cast to the device),
        through instance attributes that :meth:`_undo` deletes."""
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
        self._use_cache(runner, model, runner.train_loop, 'training set')
        if runner.val_loop is not None:  # the trunk cannot read images now
            self._use_cache(runner, model, runner.val_loop, 'validation set')
        self._bypass_trunk(model)

    def before_test(self, runner) -> None:
        """With ``cache_test``: test on cached (or disk-loaded) features."""
        if self.cache_test:
            loop, model = runner.test_loop, unwrap(runner.model)
            _check_deterministic(
                loop.dataloader, 'test', 'Set cache_test=False.'
            )
            self._use_cache(runner, model, loop, 'test set')
            self._bypass_trunk(model)

    def _undo(self, runner=None) -> None:
        """Put back the loaders and the trunk, last change first."""
        while self._restore:
            self._restore.pop()()

    after_train = after_test = _undo
