"""Frozen-trunk features: the streaming pass, the cached dataset, its key.

Stage two trains only the classifier on a frozen trunk (backbone + neck,
METHOD.md stage two item 1). :func:`trunk_features` and
:func:`iter_trunk_features` are the streaming pass over its features, shared
by the feature cache and :class:`~glag_mm.engine.AFGHook`'s statistics
pass: every rank reads its own share of the samples (``rank::world_size``)
and the results are gathered.

:class:`~glag_mm.engine.feature_cache_hook.FeatureCacheHook` runs the
epochs on a :class:`FeatureTensorDataset` of them, kept in files named by
:func:`feature_cache_key` (a hash of the trunk's weights, the data
preprocessor, the dataset's pipeline, length and labels).
"""

import hashlib
import math
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.dist import all_gather, get_dist_info
from mmengine.model import is_model_wrapper
from mmengine.utils import ProgressBar
from mmpretrain.structures import DataSample
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

#: transform names (besides any containing 'Random') that draw randomly.
RANDOM_TRANSFORMS = frozenset(
    {
        'AutoAugment',
        'RandAugment',
        'ColorJitter',
        'GaussianBlur',
        'Lighting',
        'Cutout',
        'RandomErasing',
        'Albu',
        'Albumentations',
        'TrivialAugment',
        'AugMix',
    }
)


def unwrap(model):
    return model.module if is_model_wrapper(model) else model


def trunk_modules(model) -> List[Tuple[str, torch.nn.Module]]:
    """The backbone and neck of a classifier (those it has)."""
    return [
        (name, getattr(model, name))
        for name in ('backbone', 'neck')
        if getattr(model, name, None) is not None
    ]


def _pipeline_of(dataset):
    """The innermost ``pipeline`` of a (possibly wrapped) dataset."""
    while dataset is not None:
        if getattr(dataset, 'pipeline', None) is not None:
            return dataset.pipeline
        dataset = getattr(dataset, 'dataset', None)
    return None


def find_random_transforms(dataset) -> List[str]:
    """Names of the random transforms in a dataset's pipeline."""
    pipeline = _pipeline_of(dataset)
    transforms = getattr(pipeline, 'transforms', pipeline) or []
    names = []
    for transform in transforms:
        name = (
            transform.get('type', '')
            if isinstance(transform, dict)
            else type(transform).__name__
        )
        name = name if isinstance(name, str) else name.__name__
        if 'random' in name.lower() or name in RANDOM_TRANSFORMS:
            names.append(name)
    return names


def trunk_features(model, data_batch: dict) -> Tuple[Tensor, Tensor]:
    """Pooled features f (B, D) of a batch, and its labels (B,).

    Runs the model's own data preprocessor (no batch augmentation) and
    ``extract_feat`` as defined by the classes, so it reaches the real trunk
    even while a feature cache bypasses it.
    """
    model = unwrap(model)
    pre = model.data_preprocessor
    data = type(pre).forward(pre, data_batch, False)
    feats = type(model).extract_feat(model, data['inputs'])
    if isinstance(feats, (tuple, list)):
        feats = feats[-1]
    labels = torch.cat([s.gt_label for s in data['data_samples']])
    return feats, labels.to(feats.device)


def _shard(num_samples: int) -> List[int]:
    rank, world_size = get_dist_info()
    return list(range(rank, num_samples, world_size))


def iter_trunk_features(
    model,
    dataset: Dataset,
    batch_size: int,
    collate_fn: Callable,
    num_workers: int = 0,
    progress: bool = True,
    desc: str = 'features',
) -> Iterator[Tuple[Tensor, Tensor, Tensor]]:
    """Yield ``(features, labels, indices)`` of this rank's share.

    Rank r of W reads samples r, r + W, r + 2W, ... in order, with no
    padding (each sample is seen once over all ranks). The model runs in
    eval mode without gradients; a progress bar is drawn on rank 0.
    """
    indices = _shard(len(dataset))
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=indices,
        collate_fn=collate_fn,
        num_workers=num_workers,
    )
    rank, _ = get_dist_info()
    bar = (
        ProgressBar(len(loader))
        if progress and rank == 0 and len(loader)
        else None
    )
    if bar is not None:
        print(f'{desc}: {len(dataset)} samples')
    model = unwrap(model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start, batch in zip(
                range(0, len(indices), batch_size), loader
            ):
                feats, labels = trunk_features(model, batch)
                idx = torch.as_tensor(
                    indices[start : start + batch_size], device=feats.device
                )
                yield feats, labels, idx
                if bar is not None:
                    bar.update()
    finally:
        model.train(was_training)
    if bar is not None:
        print()


def gather_shards(tensor: Tensor, num_samples: int) -> Tensor:
    """Reassemble per-rank shards (rank r holds rows r::W) in sample order.

    Every rank returns the full (num_samples, ...) tensor. Without a process
    group the tensor is returned as it is.
    """
    rank, world_size = get_dist_info()
    if world_size == 1:
        return tensor
    size = math.ceil(num_samples / world_size)
    padded = tensor.new_zeros((size,) + tuple(tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    parts = all_gather(padded)
    out = tensor.new_empty((num_samples,) + tuple(tensor.shape[1:]))
    for r, part in enumerate(parts):
        n = len(range(r, num_samples, world_size))
        out[r::world_size] = part[:n].to(out.device)
    return out


class FeatureTensorDataset(Dataset):
    """Cached pooled features with their labels, in dataset order.

    Item i is ``dict(inputs=features[i], data_samples=DataSample)`` with
    ``gt_label`` and ``sample_idx`` set, which :func:`feature_collate`
    batches the way mmpretrain's collate batches images.

    Args:
        features: (N, D) pooled features f.
        labels: (N,) class indices.
        metainfo: the source dataset's metainfo (classes, class_counts).
    """

    def __init__(
        self, features: Tensor, labels: Tensor, metainfo: Optional[dict]
    ) -> None:
        if features.ndim != 2 or labels.shape != features.shape[:1]:
            raise ValueError(
                'FeatureTensorDataset: features must be (N, D) and labels '
                f'(N,), got {tuple(features.shape)} and '
                f'{tuple(labels.shape)}'
            )
        self.features = features
        self.labels = labels.long()
        self._metainfo = dict(metainfo or {})

    @property
    def metainfo(self) -> dict:
        return dict(self._metainfo)

    def __len__(self) -> int:
        return self.features.shape[0]

    def __getitem__(self, idx: int) -> dict:
        sample = DataSample(metainfo=dict(sample_idx=int(idx)))
        sample.set_gt_label(self.labels[idx].view(1))
        return dict(inputs=self.features[idx], data_samples=sample)

    def get_gt_labels(self):
        return self.labels.numpy()

    def get_cat_ids(self, idx: int) -> List[int]:
        return [int(self.labels[idx])]


def feature_collate(batch: Sequence[dict]) -> dict:
    """Stack cached features; keep data samples as a list."""
    return dict(
        inputs=torch.stack([item['inputs'] for item in batch]),
        data_samples=[item['data_samples'] for item in batch],
    )


def _dataset_labels(dataset) -> np.ndarray:
    if hasattr(dataset, 'get_gt_labels'):
        return np.asarray(dataset.get_gt_labels(), dtype=np.int64)
    return np.asarray(
        [dataset.get_cat_ids(i)[0] for i in range(len(dataset))],
        dtype=np.int64,
    )


def feature_cache_key(model, dataset, dtype=None) -> str:
    """Hex key of the features a frozen trunk gives on a dataset.

    SHA-256 over everything the cached features depend on: every tensor of
    the trunk's state dict (backbone + neck: names, dtypes, shapes, values),
    the data preprocessor's class, buffers (mean / std) and plain settings
    (``to_rgb``, padding), the ``repr`` of
    the dataset's innermost pipeline, the dataset's length and labels, and
    the storage dtype. Any change of one of them gives another key.
    """
    model = unwrap(model)
    digest = hashlib.sha256()

    def add_tensor(name, value):
        value = value.detach().cpu().contiguous()
        digest.update(f'{name}:{value.dtype}:{tuple(value.shape)}'.encode())
        digest.update(value.view(-1).view(torch.uint8).numpy().tobytes())

    for prefix, module in trunk_modules(model):
        for name, value in module.state_dict().items():
            add_tensor(f'{prefix}.{name}', value)
    pre = model.data_preprocessor
    # mean / std are non-persistent buffers, to_rgb a plain attribute
    settings = sorted(
        (k, v)
        for k, v in vars(pre).items()
        if k != 'training'
        and isinstance(v, (bool, int, float, str, type(None)))
    )
    digest.update(f'{type(pre).__name__}:{settings}'.encode())
    for name, value in pre.named_buffers():
        add_tensor(f'data_preprocessor.{name}', value)
    digest.update(repr(_pipeline_of(dataset)).encode())
    labels = _dataset_labels(dataset)
    digest.update(f'len={len(dataset)};dtype={dtype}'.encode())
    digest.update(labels.tobytes())
    return digest.hexdigest()[:32]
