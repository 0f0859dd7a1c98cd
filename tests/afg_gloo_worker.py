"""Helpers of tests/test_afg_core.py, including its 2-rank gloo worker.

The spawned ranks import only this module and torch: ``glag_mm/core`` (pure
torch) is loaded as a package of its own, so each child skips the
OpenMMLab imports of the ``glag_mm`` package and starts in a few seconds.
"""

import importlib.util
import math
import sys
import threading
from pathlib import Path

import torch
import torch.distributed as dist

CORE_DIR = Path(__file__).resolve().parents[1] / 'glag_mm' / 'core'


def load_core():
    """``glag_mm/core`` as the standalone package ``afg_core``."""
    if 'afg_core' in sys.modules:
        return sys.modules['afg_core']
    spec = importlib.util.spec_from_file_location(
        'afg_core',
        CORE_DIR / '__init__.py',
        submodule_search_locations=[str(CORE_DIR)],
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules['afg_core'] = module
    spec.loader.exec_module(module)
    return module


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


def fill(builder, x, y, idx=None, batch=7):
    for a in range(0, len(y), batch):
        part = None if idx is None else idx[a : a + batch]
        builder.add(x[a : a + batch], y[a : a + batch], part)
    return builder


GLOO_COUNTS, GLOO_DIM, GLOO_SEED = [40, 9, 25, 3, 1], 8, 2
GLOO_TAIL = [False, True, False, True, True]
GLOO_FINALIZE = dict(num_donors=1, exact_rows=20, rank=3)


def run_in_threads(world, finalize):
    """``finalize(rank, all_gather)`` of ``world`` simulated ranks, one
    thread each, whose ``all_gather`` meets at a barrier; their results."""
    slots, barrier = [None] * world, threading.Barrier(world)
    results, errors = [None] * world, []

    def make_gather(rank):
        def gather(t):
            slots[rank] = t.clone()
            barrier.wait()
            out = [s.clone() for s in slots]
            barrier.wait()
            return out

        return gather

    def run(rank):
        try:
            results[rank] = finalize(rank, make_gather(rank))
        except Exception as exc:  # pragma: no cover - surfaced below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return results


def gloo_worker(rank, world, port, out_dir):
    """One rank: add its DistributedSampler shard, finalize, save."""
    core = load_core()
    core.statistics_builder._ROUND_BYTES = GLOO_DIM * 4 * 16  # many rounds
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
        builder = core.StatisticsBuilder(len(GLOO_COUNTS), GLOO_DIM)
        fill(builder, x[mine], y[mine], idx[mine])
        stats = builder.finalize(  # torch.distributed is initialised
            torch.tensor(GLOO_TAIL), **GLOO_FINALIZE
        )
        stats.save(f'{out_dir}/rank{rank}.pt')
    finally:
        dist.destroy_process_group()
