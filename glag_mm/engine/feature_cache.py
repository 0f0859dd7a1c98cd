"""Frozen-trunk features (backbone + neck, docs/method.md stage two item 1):
the pass of the feature cache and the statistics, and the cache's key."""

import hashlib
import math
from typing import Callable, Iterator, List, Tuple

import torch
from mmengine.dist import all_gather, get_dist_info
from mmengine.model import is_model_wrapper
from mmengine.utils import track_iter_progress
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ..core.class_counts import dataset_labels

#: transform names (besides any containing 'Random') that draw randomly.
RANDOM_TRANSFORMS = frozenset(
    'AutoAugment RandAugment ColorJitter GaussianBlur Lighting Cutout '
    'RandomErasing Albu Albumentations TrivialAugment AugMix'.split()
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


def check_frozen_trunk(model, owner: str, why: str) -> None:
    """ValueError naming the fix if a trunk parameter is trainable."""
    trainable = [
        f'{prefix}.{name}'
        for prefix, module in trunk_modules(model)
        for name, p in module.named_parameters()
        if p.requires_grad
    ]
    if trainable:
        raise ValueError(
            f'{owner}: the backbone and neck must be frozen in stage two '
            f'({why}), but {len(trainable)} parameters are trainable, e.g. '
            f'{trainable[:3]}; wrap the stage-one backbone: model.backbone='
            "dict(type='FrozenBackbone', backbone=<its dict>), and freeze the "
            f'neck ({type(getattr(model, "neck", None)).__name__}) too.'
        )


def _pipeline_of(dataset):
    """The innermost ``pipeline`` of a (possibly wrapped) dataset."""
    while dataset is not None:
        if getattr(dataset, 'pipeline', None) is not None:
            return dataset.pipeline
        dataset = getattr(dataset, 'dataset', None)


def find_random_transforms(dataset) -> List[str]:
    """Names of the random transforms in a dataset's pipeline."""
    pipeline = _pipeline_of(dataset)
    names = []
    for transform in getattr(pipeline, 'transforms', pipeline) or []:
        name = type(transform).__name__
        if isinstance(transform, dict):
            name = transform.get('type', '')
            name = name if isinstance(name, str) else name.__name__
        if 'random' in name.lower() or name in RANDOM_TRANSFORMS:
            names.append(name)
    return names


def iter_trunk_features(
    model,
    dataset: Dataset,
    batch_size: int,
    collate_fn: Callable,
    num_workers: int = 0,
    progress: bool = True,
    desc: str = 'features',
) -> Iterator[Tuple[Tensor, Tensor, Tensor]]:
    """Yield ``(features (B, D), labels (B,), indices (B,))`` of this rank,
    which reads samples rank, rank + W, ... (each once over the W ranks),
    through :func:`batch_features` in eval mode."""
    rank, world_size = get_dist_info()
    indices = list(range(rank, len(dataset), world_size))
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=indices,
        collate_fn=collate_fn,
        num_workers=num_workers,
    )
    batches = zip(range(0, len(indices), batch_size), loader)
    if progress and rank == 0 and len(loader):
        print(f'{desc}: {len(dataset)} samples')
        batches = track_iter_progress((batches, len(loader)))
    model = unwrap(model)
    was_training = model.training
    model.eval()
    try:
        for start, batch in batches:
            feats, labels = batch_features(model, batch)
            idx = torch.as_tensor(indices[start : start + batch_size])
            yield feats, labels, idx.to(feats.device)
    finally:
        model.train(was_training)


@torch.no_grad()
def batch_features(model, batch) -> Tuple[Tensor, Tensor]:
    """(pooled features (B, D), labels (B,)) of one loader batch, through
    the model's data preprocessor (no batch augmentation) and
    ``extract_feat``."""
    data = model.data_preprocessor(batch, False)
    feats = model.extract_feat(data['inputs'])
    feats = feats[-1] if isinstance(feats, (tuple, list)) else feats
    labels = torch.cat([s.gt_label for s in data['data_samples']])
    return feats, labels.to(feats.device)


def gather_shards(tensor: Tensor, num_samples: int) -> Tensor:
    """The full (num_samples, ...) tensor on every rank, from the shards
    of :func:`iter_trunk_features` (rank r of W holds rows r::W)."""
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


def feature_cache_key(model, dataset, dtype=None) -> str:
    """Hex key of a frozen trunk's features of a dataset: SHA-256 of the
    trunk's state dict, the data preprocessor's class, buffers and plain
    settings, the dataset's innermost pipeline, length and labels, and the
    storage dtype."""
    model = unwrap(model)
    digest = hashlib.sha256()

    def add_tensor(name, value):
        value = value.detach().cpu().contiguous()
        digest.update(f'{name}:{value.dtype}:{tuple(value.shape)}'.encode())
        digest.update(value.view(-1).view(torch.uint8).numpy().tobytes())

    for prefix, module in trunk_modules(model):
        for name, value in module.state_dict().items():
            add_tensor(f'{prefix}.{name}', value)
    pre = getattr(model, 'image_preprocessor', model.data_preprocessor)
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
    digest.update(f'len={len(dataset)};dtype={dtype}'.encode())
    digest.update(dataset_labels(dataset).tobytes())
    return digest.hexdigest()[:32]
