"""Peak memory of stage two's statistics pass at iNaturalist 2018 scale.

Synthetic post-ReLU features with the real per-class training counts of
iNaturalist 2018 (8,142 classes, 437,513 images; the counts as
``afg_scale.py`` reads them) at D = 2,048 are written to a float32 file in
a shuffled dataset order, then streamed from it in batches of 512 through
:class:`~glag_mm.core.StatisticsBuilder` (one rank, its output rows
memory-mapped as ``AFGHook`` builds them) and saved as the statistics file,
the way :func:`glag_mm.engine.afg_statistics.load_or_build` does.

Printed, as in ``shared_cache_memory.py``: the growth of the process's
private (anonymous) resident memory over the pass, which the target bounds
(<= 1 GiB per rank), against the N x D float32 rows a rank held before
(each rank kept every row and gathered every other rank's); and the growth
of its file-backed resident pages (the page cache of the spill file and the
output rows: shared, reclaimable, written to disk). Both are sampled every
2 ms from ``/proc/self/status``.

Run::

    OMP_NUM_THREADS=1 python benchmarks/statistics_pass_memory.py --json s.json
"""

import argparse
import json
import os
import tempfile
import threading
import time

import numpy as np
import torch

from glag_mm.core import StatisticsBuilder, tail_classes

GiB = 2**30


def status(*keys):
    """Sizes in bytes from ``/proc/self/status`` (``RssAnon``, ``VmHWM``)."""
    out = {}
    with open('/proc/self/status') as f:
        for line in f:
            key, _, value = line.partition(':')
            if key in keys:
                out[key] = int(value.split()[0]) * 1024
    return [out[key] for key in keys]


def resident():
    """(anonymous, file-backed) resident bytes of this process."""
    return status('RssAnon', 'RssFile')


class PeakSampler(threading.Thread):
    """Highest (anonymous, file-backed) resident bytes while running."""

    def __init__(self, period=0.002):
        super().__init__(daemon=True)
        self.period, self.stop = period, threading.Event()
        self.peak = list(resident())

    def run(self):
        while not self.stop.is_set():
            self.peak = [max(p, r) for p, r in zip(self.peak, resident())]
            time.sleep(self.period)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.join()
        self.peak = [max(p, r) for p, r in zip(self.peak, resident())]


def write_features(path, counts, dim, seed=0, chunk=8192):
    """(N, D) float32 features in a shuffled order, to ``path``; labels."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.repeat_interleave(torch.arange(len(counts)), counts)
    labels = labels[torch.randperm(len(labels), generator=g)]
    shift = torch.rand(len(counts), generator=g)  # class-dependent means
    with open(path, 'wb') as f:
        for a in range(0, len(labels), chunk):
            lab = labels[a : a + chunk]
            x = torch.randn(len(lab), dim, generator=g).add_(shift[lab, None])
            f.write(x.relu_().sqrt_().numpy())
    return labels


def statistics_pass(counts, dim=2048, batch=512, exact_rows=32, rank=32):
    """Figures of one pass over synthetic features with ``counts``."""
    tail = tail_classes(counts, 100)
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, 'features.f32')
        labels = write_features(source, counts, dim)
        before = resident()
        t0 = time.perf_counter()
        with PeakSampler() as peak:
            builder = StatisticsBuilder(len(counts), dim, scratch=tmp)
            for a in range(0, len(labels), batch):
                n = min(batch, len(labels) - a)
                x = np.fromfile(
                    source, np.float32, n * dim, offset=a * dim * 4
                )
                idx = torch.arange(a, a + n)
                builder.add(torch.from_numpy(x).view(n, dim), labels[idx], idx)
            stats = builder.finalize(
                tail, exact_rows=exact_rows, rank=rank, all_gather=False
            )
            stats.save(os.path.join(tmp, 'statistics.pth'), key='bench')
            size = stats.memory_bytes()
            del stats
        seconds = time.perf_counter() - t0
    rows = len(labels) * dim * 4
    anon, file = (p - b for p, b in zip(peak.peak, before))
    return dict(
        peak_anon_bytes=anon,
        peak_file_bytes=file,
        rows_bytes=rows,
        statistics_bytes=size,
        seconds=seconds,
        peak_rss_bytes=status('VmHWM')[0],  # the whole process's
    )


def main():
    import afg_scale  # the counts, as the scale benchmark reads them

    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--json', help='write the figures to this file')
    p.add_argument('--threads', type=int, default=None)
    p.add_argument(
        '--scale', default='iNaturalist 2018', choices=afg_scale.SCALES
    )
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    counts, source = afg_scale.class_counts(args.scale)
    out = statistics_pass(counts)
    out['counts'] = source
    print(
        f'statistics pass, {args.scale} ({int(counts.sum()):,} features, '
        f'D = 2048, counts {source}): private memory +'
        f'{out["peak_anon_bytes"] / GiB:.2f} GiB (target <= 1 GiB per rank) '
        f'= {out["peak_anon_bytes"] / out["rows_bytes"]:.3f} x the '
        f'{out["rows_bytes"] / GiB:.2f} GiB of rows a rank held before; '
        f'file-backed pages +{out["peak_file_bytes"] / GiB:.2f} GiB '
        f'(statistics file {out["statistics_bytes"] / GiB:.2f} GiB), '
        f'{out["seconds"]:.0f} s; peak resident memory of this process '
        f'{out["peak_rss_bytes"] / GiB:.2f} GiB'
    )
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(out, f, indent=1)


if __name__ == '__main__':
    main()
