"""Helpers of tests/test_afg_core.py, including its 2-rank gloo worker.

The spawned ranks import only this module and torch: the feature bank is
loaded from its file (it imports nothing but torch), so each child skips
the OpenMMLab imports of the ``glag_mm`` package and starts in a few
seconds.
"""

import importlib.util
import math
from pathlib import Path

import torch
import torch.distributed as dist

BANK_FILE = (
    Path(__file__).resolve().parents[1]
    / 'glag_mm'
    / 'core'
    / 'feature_bank.py'
)


def make_features(counts, dim, seed=0):
    """Non-negative features, class c shifted by 0.3 c, shuffled; indices."""
    g = torch.Generator().manual_seed(seed)
    xs, ys = [], []
    for c, n in enumerate(counts):
        scale = 0.5 + torch.rand(dim, generator=g)
        xs.append(torch.rand(n, dim, generator=g) * scale + 0.3 * c)
        ys.append(torch.full((n,), c))
    x, y = torch.cat(xs).double(), torch.cat(ys)
    perm = torch.randperm(len(y), generator=g)
    return x[perm], y[perm], torch.arange(len(y))


def shard(num, world, rank):
    """DistributedSampler's split: pad by repeating the head, stride."""
    order = torch.randperm(num, generator=torch.Generator().manual_seed(3))
    total = math.ceil(num / world) * world
    padded = torch.cat([order, order[: total - num]])
    return padded[rank::world]


def fill_bank(bank, x, y, idx=None, batch=7):
    for a in range(0, len(y), batch):
        part = None if idx is None else idx[a : a + batch]
        bank.add(x[a : a + batch], y[a : a + batch], part)
    return bank


GLOO_COUNTS, GLOO_DIM, GLOO_SEED = [40, 9, 25, 3, 1], 8, 2


def gloo_worker(rank, world, port, out_dir):
    """One rank: add its DistributedSampler shard, finalize, save state."""
    spec = importlib.util.spec_from_file_location('afg_bank', BANK_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module._ROUND_BYTES = GLOO_DIM * 2 * 16  # several gather rounds
    torch.set_num_threads(1)
    dist.init_process_group(
        'gloo',
        init_method=f'tcp://127.0.0.1:{port}',
        rank=rank,
        world_size=world,
    )
    try:
        x, y, idx = make_features(GLOO_COUNTS, GLOO_DIM, GLOO_SEED)
        mine = shard(len(y), world, rank)
        bank = module.ClassFeatureBank(len(GLOO_COUNTS), GLOO_DIM)
        fill_bank(bank, x[mine], y[mine], idx[mine])
        bank.finalize()  # torch.distributed is initialised: gathers
        torch.save(bank.state_dict(), f'{out_dir}/rank{rank}.pt')
    finally:
        dist.destroy_process_group()
