"""Cost of the integrity checks against the load they protect.

* checkpoint: a ResNet-50-sized state dict with SGD momentum (about 2 x 25.6
  M float32 values in 2 x 161 tensors); baseline ``torch.load`` with
  ``weights_only=True``; checked: the zip CRC-32 of every member
  (:func:`glag_mm.core.zip_crc.first_bad_member`, one thread and the
  default threads), and :func:`glag_mm.safe_load.load_checkpoint_file`
  without it, on a first load (checked) and on a later load of the same,
  unchanged file (checked once per process);
* feature cache: (N, 2048) float32 features and their labels, stamped;
  baseline: reading the file (``torch.load`` memory-mapped, then summing
  every feature, which pages it all in); checked: the stamp's checksums
  (:func:`glag_mm.engine.files.stage_two_problem`).

Every time is the best of ``--repeat`` runs on a warm page cache, printed
with its ratio to the baseline measured in the same process. Run::

    OMP_NUM_THREADS=1 python benchmarks/crc_cost.py [--samples 50000]

Absolute times depend on the machine and its load; compare the ratios.
"""

import argparse
import os.path as osp
import tempfile
import time
import zlib

import torch

from glag_mm import safe_load
from glag_mm.core import zip_crc
from glag_mm.core.file_stamp import seal
from glag_mm.core.zip_crc import default_workers, first_bad_member
from glag_mm.engine.files import stage_two_problem
from glag_mm.safe_load import load_checkpoint_file


def best(repeat, fn):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def resnet50_like(seed=0):
    """161 tensors, 25.6 M values: ResNet-50's parameter shapes."""
    gen = torch.Generator().manual_seed(seed)
    shapes = [(64, 3, 7, 7)]
    for width, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        for b in range(blocks):
            in_ch = width * 4 if b else max(64, width * 2)
            shapes += [(width, in_ch, 1, 1), (width, width, 3, 3)]
            shapes += [(width * 4, width, 1, 1)]
            shapes += [(width,)] * 4 + [(width * 4,)] * 2
    shapes += [(1000, 2048), (1000,)]
    state = {
        f'p{i}': torch.randn(s, generator=gen) for i, s in enumerate(shapes)
    }
    momentum = {
        i: {'momentum_buffer': v.clone()} for i, v in enumerate(state.values())
    }
    return dict(state_dict=state, optimizer=dict(state=momentum), meta={})


def first_load(path):
    """A load that has not verified ``path`` yet in this process."""
    safe_load._VERIFIED.clear()
    return load_checkpoint_file(path)


def with_zlib(fn):
    """``fn`` run with zlib's CRC-32 in place of the default backend."""
    backend = zip_crc.crc32
    zip_crc.crc32 = zlib.crc32
    try:
        return fn()
    finally:
        zip_crc.crc32 = backend


def report(rows, baseline):
    for name, seconds in rows:
        print(
            f'  {name:<44} {seconds * 1e3:9.1f} ms  {seconds / baseline:6.3f}'
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--samples', type=int, default=50000)
    parser.add_argument('--repeat', type=int, default=3)
    args = parser.parse_args()
    workers = default_workers()
    with tempfile.TemporaryDirectory() as folder:
        path = osp.join(folder, 'epoch_1.pth')
        torch.save(resnet50_like(), path)
        size = osp.getsize(path) / 2**20
        load = best(args.repeat, lambda: torch.load(path, weights_only=True))
        print(
            f'checkpoint: {size:.0f} MiB; time, ratio to torch.load '
            f'(CRC-32 of {zip_crc.CRC32_BACKEND})'
        )
        report(
            [
                ('torch.load(weights_only=True) (baseline)', load),
                (
                    'zip CRCs, 1 thread, zlib.crc32',
                    with_zlib(
                        lambda: best(
                            args.repeat, lambda: first_bad_member(path, 1)
                        )
                    ),
                ),
                (
                    'zip CRCs, 1 thread',
                    best(args.repeat, lambda: first_bad_member(path, 1)),
                ),
                (
                    f'zip CRCs, {workers} threads (default)',
                    best(args.repeat, lambda: first_bad_member(path)),
                ),
                (
                    'load_checkpoint_file, crc=False',
                    best(
                        args.repeat,
                        lambda: load_checkpoint_file(path, crc=False),
                    ),
                ),
                (
                    'load_checkpoint_file, first load (CRCs checked)',
                    best(args.repeat, lambda: first_load(path)),
                ),
                (
                    'load_checkpoint_file, same file again',
                    best(args.repeat, lambda: load_checkpoint_file(path)),
                ),
            ],
            load,
        )

        path = osp.join(folder, 'cache.pth')
        features = torch.randn(args.samples, 2048)
        labels = torch.randint(0, 1000, (args.samples,))
        torch.save(seal(dict(features=features, labels=labels), 'k'), path)
        del features, labels
        size = osp.getsize(path) / 2**20

        def read():
            data = torch.load(path, weights_only=True, mmap=True)
            return float(data['features'].sum())

        read_time = best(args.repeat, read)
        print(f'feature cache: {size:.0f} MiB; time, ratio to reading it')
        report(
            [
                ('mmap load + sum of every feature (baseline)', read_time),
                (
                    'stage_two_problem (stamp checksums)',
                    best(args.repeat, lambda: stage_two_problem(path, 'k')),
                ),
            ],
            read_time,
        )
        assert stage_two_problem(path, 'k') is None


if __name__ == '__main__':
    main()
