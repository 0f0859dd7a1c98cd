"""AFGHead's class statistics: one streaming pass of the frozen model over
the training set with a deterministic pipeline (docs/method.md stage two item
3) into ``<work_dir>/afg_statistics/<key>.pth``, keyed by the trunk's weights
and the data (as :func:`feature_cache_key`), the pipeline and the head's
settings; built once, memory-mapped by every rank (:func:`build_once`).
"""

import copy
import hashlib
import os.path as osp
from functools import partial
from typing import Any, Optional, Tuple

import torch
from mmengine.dist import get_dist_info
from mmengine.registry import FUNCTIONS
from mmpretrain.registry import DATASETS

from ..core.calibration import tail_classes
from ..core.class_statistics import ClassStatistics
from ..core.statistics_builder import StatisticsBuilder
from ..datasets.feature_dataset import FeatureTensorDataset
from .feature_cache import (
    feature_cache_key,
    iter_trunk_features,
)
from .files import build_once, is_node_writer

STATISTICS_DIR = 'afg_statistics'


def _holders(cfg: Any) -> list:
    """A dataset config and the ones it wraps that have a ``pipeline``."""
    found = []
    while isinstance(cfg, dict):
        found += [cfg] if 'pipeline' in cfg else []
        cfg = cfg.get('dataset')
    return found


def _find_pipeline(cfg: Any) -> Optional[list]:
    """The first ``pipeline`` of a dataset config, through wrappers."""
    found = [c['pipeline'] for c in _holders(cfg) if c['pipeline'] is not None]
    return found[0] if found else None


def _source(runner, pipeline, batch_size, num_workers, progress):
    """This rank's (features, labels, indices) batches of the training set
    read through ``pipeline``: from the feature cache when it holds them."""
    train_cfg = runner.cfg.get('train_dataloader')
    if not isinstance(train_cfg, dict) or 'dataset' not in train_cfg:
        raise ValueError(
            'AFGHook: the config has no train_dataloader.dataset to run the '
            'statistics pass on; build the Runner from a config.'
        )
    batch_size = batch_size or train_cfg.get('batch_size', 32)
    live = runner.train_loop.dataloader.dataset
    if isinstance(live, FeatureTensorDataset) and (
        _find_pipeline(train_cfg['dataset']) == pipeline
    ):
        runner.logger.info(
            'AFGHook: statistics from the feature cache (its pipeline is the '
            'statistics pipeline)'
        )
        rank, world = get_dist_info()
        idx = torch.arange(rank, len(live), world)
        return (
            (live.features[part], live.labels[part], part)
            for part in torch.split(idx, batch_size)
        )
    dataset_cfg = copy.deepcopy(train_cfg['dataset'])
    if not _holders(dataset_cfg):
        raise ValueError(
            'AFGHook: the training dataset config has no pipeline to replace '
            'with the statistics pipeline'
        )
    for holder in _holders(dataset_cfg):
        holder['pipeline'] = copy.deepcopy(pipeline)
    collate_cfg = dict(train_cfg.get('collate_fn', None) or {})
    collate = collate_cfg.pop('type', 'pseudo_collate')
    collate = FUNCTIONS.get(collate) if isinstance(collate, str) else collate
    if num_workers is None:
        num_workers = train_cfg.get('num_workers', 0)
    return iter_trunk_features(
        runner.model,
        DATASETS.build(dataset_cfg),
        batch_size=batch_size,
        collate_fn=partial(collate, **collate_cfg),
        num_workers=num_workers,
        progress=progress,
        desc='AFG statistics pass',
    )


def build_statistics(
    head,
    batches,
    all_gather=None,
    scratch: Optional[str] = None,
    keep: bool = True,
) -> Optional[ClassStatistics]:
    """Statistics for ``head`` (its Tukey transform and settings) of this
    rank's ``batches`` of (raw features, labels, dataset indices);
    ``all_gather``, ``keep``, ``scratch``: :class:`StatisticsBuilder`'s."""
    device = head.fc.weight.device
    builder = StatisticsBuilder(
        head.num_classes, head.in_channels, device=device, scratch=scratch
    )
    for i, (feats, labels, idx) in enumerate(batches):
        if i == 0:  # signed (LayerNorm-ended) trunk: lam = 1, see AFGHead
            head.signed_features.fill_(bool((feats < 0).any()))
        feats = head.transform(feats.to(device), check=True)
        builder.add(feats, labels.to(device), idx.to(device))
    return builder.finalize(
        tail_mask=lambda counts: tail_classes(counts, head.tail_threshold),
        num_donors=head.num_donors,
        weighting=head.donor_weighting,
        exact_rows=head.exact_rows,
        rank=head.factor_rank,
        all_gather=all_gather,
        keep=keep,
    )


def load_or_build(
    runner,
    head,
    pipeline: Optional[list] = None,
    batch_size: Optional[int] = None,
    num_workers: Optional[int] = None,
    progress: bool = True,
) -> Tuple[ClassStatistics, str]:
    """The run's statistics (loaded from their file, else built); the path.
    ``pipeline``: the statistics pass's, default the val (or test) one."""
    for loader in ('val_dataloader', 'test_dataloader'):
        if pipeline is None and isinstance(runner.cfg.get(loader), dict):
            pipeline = _find_pipeline(runner.cfg[loader].get('dataset'))
    if pipeline is None:
        raise ValueError(
            'AFGHook: no validation or test pipeline in the config to read '
            'the training set without augmentation; pass pipeline=[...] to '
            'AFGHook.'
        )
    dataset = runner.train_loop.dataloader.dataset
    text = feature_cache_key(runner.model, dataset) + repr(pipeline)
    text += repr(sorted(head.settings().items()))
    key = hashlib.sha256(text.encode()).hexdigest()[:32]
    path = osp.join(runner.work_dir, STATISTICS_DIR, f'{key}.pth')
    built = build_once(
        path,
        key,
        'AFG class statistics',
        lambda: build_statistics(
            head,
            _source(runner, pipeline, batch_size, num_workers, progress),
            scratch=osp.dirname(path),
            keep=is_node_writer(),  # the others only send their rows
        ),
        lambda stats, tmp: stats.save(tmp, key=key),
        runner.logger,
    )
    # every rank maps the one file
    stats = ClassStatistics.load(path, device=head.fc.weight.device)
    runner.logger.info(
        f'AFGHook: statistics of {int(stats.counts.sum())} training '
        f'features, {stats.memory_bytes() / 2**20:.1f} MiB, written to '
        f'{path}'
        if built
        else f'AFGHook: class statistics loaded from {path}'
    )
    return stats, path
