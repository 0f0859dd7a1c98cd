"""ClassAwareSampler: balance, disjoint per-rank shares, seeding."""

import json
import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATA_SAMPLERS

import glag_mm.datasets.samplers as samplers_module
from glag_mm.datasets import ClassAwareSampler, LongTailDataset

COUNTS = [50, 20, 7, 3, 1]


class ToyDataset(BaseDataset):
    """In-memory single-label samples: ``labels[i]`` and a 2x2 image."""

    def __init__(self, labels, **kwargs):
        self._labels = list(labels)
        num = max(self._labels) + 1
        super().__init__(
            ann_file='',
            serialize_data=False,  # skips mmengine's slow gc.collect()
            metainfo=dict(classes=tuple(f'c{i}' for i in range(num))),
            **kwargs,
        )

    def load_data_list(self):
        return [
            dict(img=np.full((2, 2, 3), i % 256, np.uint8), gt_label=label)
            for i, label in enumerate(self._labels)
        ]


def toy(counts=COUNTS, seed=0) -> ToyDataset:
    labels = np.repeat(np.arange(len(counts)), counts)
    np.random.default_rng(seed).shuffle(labels)
    return ToyDataset(labels.tolist())


def make(monkeypatch, dataset, rank=0, world_size=1, **kwargs):
    monkeypatch.setattr(
        samplers_module, 'get_dist_info', lambda: (rank, world_size)
    )
    return ClassAwareSampler(dataset, **kwargs)


def class_counts(dataset, indices):
    labels = dataset.get_gt_labels()
    return np.bincount(labels[np.asarray(indices)], minlength=len(COUNTS))


def test_single_process_epoch_is_exactly_balanced(monkeypatch):
    ds = toy()
    sampler = make(monkeypatch, ds, seed=3)
    indices = list(sampler)
    assert len(sampler) == len(indices) == 50 * 5  # default: n_max per class
    assert class_counts(ds, indices).tolist() == [50] * 5
    # each class cycles through its images: image draws differ by <= 1
    labels = ds.get_gt_labels()
    draws = np.bincount(indices, minlength=len(ds))
    for c, n in enumerate(COUNTS):
        of_class = draws[labels == c]
        assert of_class.sum() == 50
        assert of_class.min() == 50 // n and of_class.max() == -(-50 // n)


@pytest.mark.parametrize('world_size', [2, 3])
def test_two_and_three_ranks_share_disjoint_balanced_positions(
    monkeypatch, world_size
):
    ds = toy()
    shares = [
        list(make(monkeypatch, ds, r, world_size, seed=7))
        for r in range(world_size)
    ]
    total = -(-250 // world_size) * world_size  # rounded up: 250 or 252
    assert [len(s) for s in shares] == [total // world_size] * world_size
    # the shares, in rank order, are the one epoch list every rank built
    full = make(monkeypatch, ds, 0, world_size, seed=7).epoch_indices()
    assert len(full) == total
    assert np.concatenate(shares).tolist() == full.tolist()
    together = class_counts(ds, np.concatenate(shares))
    assert together.sum() == total
    assert together.max() - together.min() <= 1
    for share in shares:  # each rank is itself balanced within 2
        counts = class_counts(ds, share)
        assert counts.max() - counts.min() <= 2


def test_set_epoch_reshuffles_and_seed_reproduces(monkeypatch):
    ds = toy()
    a = make(monkeypatch, ds, 1, 2, seed=11)
    first = list(a)
    assert list(a) == first  # same epoch, same order
    a.set_epoch(1)
    second = list(a)
    assert second != first
    other_rank = make(monkeypatch, ds, 0, 2, seed=11)
    other_rank.set_epoch(1)
    both = class_counts(ds, second + list(other_rank))
    assert both.tolist() == [50] * 5
    b = make(monkeypatch, ds, 1, 2, seed=11)
    b.set_epoch(1)
    assert list(b) == second
    c = make(monkeypatch, ds, 1, 2, seed=12)
    c.set_epoch(1)
    assert list(c) != second


def test_seed_none_is_synchronised_seed(monkeypatch):
    monkeypatch.setattr(samplers_module, 'sync_random_seed', lambda: 1234)
    sampler = make(monkeypatch, toy(), seed=None)
    assert sampler.seed == 1234


def test_options(monkeypatch):
    ds = toy()
    short = make(monkeypatch, ds, 0, 2, num_samples_per_class=9, seed=0)
    assert len(short) == 9 * 5 // 2 + 1  # 45 rounded up to 46, halved
    dropped = make(
        monkeypatch, ds, 0, 2, num_samples_per_class=9, round_up=False
    )
    assert len(dropped) == 22
    grouped = make(monkeypatch, ds, samples_per_pick=4, seed=0)
    labels = ds.get_gt_labels()[grouped.epoch_indices()]
    assert len(labels) == 250
    groups = labels[:248].reshape(-1, 4)
    assert (groups == groups[:, :1]).all()  # 4 images of one class per pick
    counts = np.bincount(labels)
    assert counts.max() - counts.min() <= 4
    ordered = make(monkeypatch, ds, shuffle=False, num_samples_per_class=2)
    first_of_class = [
        int(np.flatnonzero(ds.get_gt_labels() == c)[0]) for c in range(5)
    ]
    assert list(ordered)[:5] == first_of_class


def test_bad_arguments(monkeypatch):
    ds = toy()
    with pytest.raises(ValueError, match='samples_per_pick'):
        make(monkeypatch, ds, samples_per_pick=0)
    with pytest.raises(ValueError, match='num_samples_per_class'):
        make(monkeypatch, ds, num_samples_per_class=0)
    with pytest.raises(ValueError, match='seed'):
        make(monkeypatch, ds, seed=-5)


def test_classes_without_images_are_skipped(monkeypatch):
    ds = ToyDataset([0, 0, 0, 2])  # class 1 has no image
    sampler = make(monkeypatch, ds, seed=0)
    assert np.bincount(ds.get_gt_labels()[list(sampler)]).tolist() == [
        3,
        0,
        3,
    ]


def test_on_a_long_tail_dataset_through_the_registry(monkeypatch):
    base = toy([40] * 4, seed=1)
    lt = LongTailDataset(base, imbalance_factor=8, seed=0)
    assert lt.metainfo['class_counts'] == [40, 20, 10, 5]
    monkeypatch.setattr(samplers_module, 'get_dist_info', lambda: (0, 1))
    sampler = DATA_SAMPLERS.build(
        dict(type='ClassAwareSampler'), default_args=dict(dataset=lt, seed=0)
    )
    assert isinstance(sampler, ClassAwareSampler)
    indices = list(sampler)
    assert len(indices) == 160 and max(indices) < len(lt)
    assert np.bincount(lt.get_gt_labels()[indices]).tolist() == [40] * 4
    # as a Runner builds it from a config (default_scope='mmpretrain')
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        loader = Runner.build_dataloader(
            dict(
                dataset=lt,
                sampler=dict(
                    type='ClassAwareSampler', num_samples_per_class=6
                ),
                batch_size=8,
                num_workers=0,
                collate_fn=dict(type='default_collate'),
            ),
            seed=0,
        )
    labels = np.concatenate(
        [np.asarray(b['gt_label']).ravel() for b in loader]
    )
    assert np.bincount(labels).tolist() == [6] * 4


# --------------------------------------------- two real gloo processes


def _ddp_worker(rank, world_size, init_file, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group(
        'gloo',
        init_method=f'file://{init_file}',
        rank=rank,
        world_size=world_size,
    )
    try:
        ds = ToyDataset(np.repeat(np.arange(5), COUNTS).tolist())
        # seed=None: every rank must end up with rank 0's random seed,
        # although the forked ranks' own random states now differ
        np.random.seed(100 + rank)
        sampler = ClassAwareSampler(ds)
        shares = {}
        for epoch in (0, 1):
            sampler.set_epoch(epoch)
            shares[epoch] = list(sampler)
        with open(os.path.join(out_dir, f'{rank}.json'), 'w') as f:
            json.dump(dict(seed=sampler.seed, shares=shares), f)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_ranks_agree_on_seed_and_split_the_epoch(tmp_path):
    start_method = 'spawn' if dist.is_initialized() else 'fork'
    mp.start_processes(
        _ddp_worker,
        args=(2, str(tmp_path / 'pg'), str(tmp_path)),
        nprocs=2,
        join=True,
        start_method=start_method,
    )
    results = [
        json.loads((tmp_path / f'{r}.json').read_text()) for r in (0, 1)
    ]
    assert results[0]['seed'] == results[1]['seed']
    labels = np.repeat(np.arange(5), COUNTS)
    for epoch in ('0', '1'):
        shares = [res['shares'][epoch] for res in results]
        assert len(shares[0]) == len(shares[1]) == 125
        together = np.bincount(labels[shares[0] + shares[1]])
        assert together.tolist() == [50] * 5
    assert results[0]['shares']['0'] != results[0]['shares']['1']
