"""Memory of stage two's shared feature cache on two ranks of one machine.

Run under torchrun with two processes on gloo::

    OMP_NUM_THREADS=1 torchrun --nproc_per_node=2 \\
        benchmarks/shared_cache_memory.py --quick

Each rank computes its share of a feature cache (synthetic features, the
size of a real cache: 115,846 x 2,048 float32 at ImageNet-LT scale; 32,768 x
2,048 with ``--quick``), the shares are gathered as
:class:`~glag_mm.engine.StageTwoTrainLoop` gathers them, and the cache goes
through the plugin's own path: written once per machine
(:func:`~glag_mm.engine.files.write_once_per_node`) and memory-mapped
by every rank (``torch.load(..., mmap=True)``, as the hook and
:class:`~glag_mm.engine.AFGHook`'s statistics file do). Then every rank
reads all of it, as an epoch does.

Printed for rank 1 (the rank that does not write), against the cache's
size and against a private copy of the same cache taken in the same
process (what every rank held before): growth of its private (anonymous)
resident memory, which the target bounds (<= 10 % of the cache), of its
file-backed resident pages (the page cache, one copy per machine, shared
with rank 0) and of its proportional share (PSS).
"""

import argparse
import os
import tempfile

import torch
import torch.distributed as dist

from glag_mm.engine.feature_cache import gather_shards
from glag_mm.engine.files import write_once_per_node

MiB = 2**20


def memory():
    """(anonymous RSS, file RSS, PSS) of this process in bytes."""
    out = {}
    with open('/proc/self/status') as f:
        for line in f:
            key, _, value = line.partition(':')
            if key in ('RssAnon', 'RssFile'):
                out[key] = int(value.split()[0]) * 1024
    with open('/proc/self/smaps_rollup') as f:
        for line in f:
            if line.startswith('Pss:'):
                out['Pss'] = int(line.split()[1]) * 1024
    return out['RssAnon'], out['RssFile'], out['Pss']


def read_all(features, block=4096):
    total = 0.0
    for a in range(0, features.shape[0], block):
        total += float(features[a : a + block].sum())
    return total


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--rows', type=int, default=115846)
    p.add_argument('--dim', type=int, default=2048)
    p.add_argument('--quick', action='store_true', help='32,768 rows')
    p.add_argument('--dir', default=None, help='where the cache file goes')
    args = p.parse_args()
    if args.quick:
        args.rows = 32768
    torch.set_num_threads(1)
    dist.init_process_group('gloo')
    rank, world = dist.get_rank(), dist.get_world_size()
    directory = [args.dir or tempfile.mkdtemp(prefix='glag_cache_')]
    dist.broadcast_object_list(directory)
    path = os.path.join(directory[0], 'features.pth')
    cache_bytes = args.rows * args.dim * 4

    before = memory()
    g = torch.Generator().manual_seed(rank)
    share = torch.rand(
        len(range(rank, args.rows, world)), args.dim, generator=g
    )
    full = gather_shards(share, args.rows)
    write_once_per_node(path, lambda tmp: torch.save(dict(features=full), tmp))
    share = full = None  # drop this rank's copies
    features = torch.load(path, mmap=True, weights_only=True)['features']
    read_all(features)
    dist.barrier()
    shared = memory()
    private = features.clone()  # what a per-rank copy costs
    read_all(private)
    copied = memory()

    grow = [s - b for s, b in zip(shared, before)]
    copy_anon = copied[0] - shared[0]
    if rank == 1:
        print(
            f'cache {args.rows:,} x {args.dim} float32 = '
            f'{cache_bytes / MiB:.0f} MiB, {world} ranks on gloo'
        )
        print(
            f'rank 1, shared file: private (anonymous) memory '
            f'+{grow[0] / MiB:.1f} MiB = {100 * grow[0] / cache_bytes:.1f} % '
            f'of the cache (target <= 10 %); file-backed pages '
            f'+{grow[1] / MiB:.0f} MiB (page cache, shared by the machine); '
            f'PSS +{grow[2] / MiB:.0f} MiB'
        )
        print(
            f'rank 1, private copy (before): private memory '
            f'+{copy_anon / MiB:.0f} MiB = {100 * copy_anon / cache_bytes:.0f}'
            ' % of the cache'
        )
    dist.barrier()
    if rank == 0 and args.dir is None:
        os.remove(path)
        os.rmdir(directory[0])
    dist.destroy_process_group()


if __name__ == '__main__':
    main()
