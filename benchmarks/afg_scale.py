"""Scale benchmark of stage two's statistics and generator.

Class counts are the real training counts of ImageNet-LT (1,000 classes,
115,846 images) and iNaturalist 2018 (8,142 classes, 437,513 images), read
from ``../shared/data/lt-splits`` next to the repository (an exponential
profile with the same C, N, n_max and n_min when the files are absent; the
output says which). It prints, each figure against a baseline of the same
process:

* statistics memory at D = 2048 with the default bound (exact rows up to
  32 per class, a rank-32 factor above, tail anchors kept) over dense
  per-class covariances (C x D x D float32), which must stay <= 1/30. The
  bytes follow from the layout; the layout is checked against statistics
  actually built at a small D with the same counts;
* what a stage-two checkpoint holds beyond the classifier's weights and the
  optimizer state at ImageNet-LT scale (the confidence state and the
  statistics file's name);
* per-batch generation time (``generation_plan`` in 'balance' mode on a
  real batch of B, then ``generate_features``) at 2x and 4x the features
  of ImageNet-LT over the 1x time, timed in interleaved rounds (the tail
  threshold is a fraction of n_max, so the same classes are tail);
* generation throughput: the multiply-adds of its products (2 D per factor
  row read) per second over the rate of a 1024^3 sgemm timed between the
  batches, and, as ``normals_only_over_sgemm``, the same figure if drawing
  the batch's normals (one per factor row read, D more per draw with an
  isotropic residual) with ``torch.randn`` were all it cost: on a CPU the
  draws alone cap the throughput near that figure;
* the statistics pass's own peak memory at iNaturalist 2018 scale (real
  counts, D = 2048), in a child process (``statistics_pass_memory.py``):
  the growth of its private resident memory, <= 1 GiB per rank, against
  the N x D rows each rank held before; and the peak resident memory of
  this process and of the child (under 4 GiB).

Run::

    OMP_NUM_THREADS=1 python benchmarks/afg_scale.py --threads 1
    OMP_NUM_THREADS=1 python benchmarks/afg_scale.py --quick --json s.json

``--quick`` generates at D = 256 (a few minutes on two cores); the memory
and checkpoint figures are at D = 2048 either way. ``--json FILE`` writes
``generation_scaling_2x``, ``generation_scaling_4x``,
``generation_over_sgemm``, ``normals_only_over_sgemm``, the memory
ratios, ``statistics_pass_peak_gib_inat`` (and, over the rows a rank held
before, ``statistics_pass_over_rows_inat``) and ``peak_rss_gib`` (the
larger of this process's and the child's).
"""

import argparse
import io
import json
import math
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from glag_mm.core import (
    StatisticsBuilder,
    generate_features,
    generation_plan,
    seeded_generators,
    tail_classes,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
SPLITS = REPO_ROOT.parent / 'shared' / 'data' / 'lt-splits'
SCALES = {
    # name: (split file, C, N, n_max, n_min) of the published training sets
    'ImageNet-LT': ('ImageNet_LT.json', 1000, 115846, 1280, 5),
    'iNaturalist 2018': ('iNaturalist18.json', 8142, 437513, 1000, 2),
}
EXACT_ROWS, RANK, K, DIM = 32, 32, 3, 2048


def class_counts(name):
    split, classes, total, n_max, n_min = SCALES[name]
    path = SPLITS / split
    if path.is_file():
        return torch.tensor(json.loads(path.read_text())), f'real ({split})'
    pos = torch.arange(classes, dtype=torch.float64) / (classes - 1)
    lo, hi = 0.05, 20.0
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        got = (n_max * (n_min / n_max) ** pos.pow(mid)).floor().sum()
        lo, hi = (mid, hi) if got < total else (lo, mid)
    counts = (n_max * (n_min / n_max) ** pos.pow(lo)).floor().long()
    return counts.clamp(min=n_min), f'{split} absent: exponential profile'


def build(counts, dim, tail, seed=0):
    """Statistics of synthetic post-ReLU, Tukey-transformed features."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(len(counts), dim, generator=g)
    builder = StatisticsBuilder(len(counts), dim)
    start = 0
    for c, n in enumerate(counts.tolist()):
        x = (centres[c] + 0.5 * torch.randn(n, dim, generator=g)).relu()
        builder.add(x.sqrt(), torch.full((n,), c), torch.arange(n) + start)
        start += n
    return builder.finalize(
        tail, num_donors=K, exact_rows=EXACT_ROWS, rank=RANK, all_gather=False
    )


def layout_rows(counts, tail):
    """Rows of the statistics: factors (<= max(exact, rank)) + anchors."""
    factor = torch.where(
        counts <= EXACT_ROWS, counts, torch.clamp(counts - 1, max=RANK)
    )
    anchors = torch.where(tail & (counts > EXACT_ROWS), counts, 0)
    return int(factor.sum() + anchors.sum())


def memory(name):
    counts, source = class_counts(name)
    tail = tail_classes(counts, 100)
    small = build(counts, RANK + 8, tail)  # the layout, at a small D
    rows = layout_rows(counts, tail)
    assert small.rows.shape[0] == rows, (small.rows.shape, rows)
    tables = small.memory_bytes() - (rows + len(counts)) * (RANK + 8) * 4
    full = (rows + len(counts)) * DIM * 4 + tables
    dense = len(counts) * DIM * DIM * 4
    return dict(source=source, bytes=full, dense=dense, ratio=full / dense)


def checkpoint_extra():
    from mmpretrain.registry import MODELS

    import glag_mm  # noqa: F401

    head = MODELS.build(
        dict(type='AFGHead', num_classes=1000, in_channels=DIM)
    )

    def size(state):
        buf = io.BytesIO()
        torch.save(state, buf)
        return buf.tell()

    state = head.state_dict()
    weights = {k: v for k, v in state.items() if k.startswith('fc.')}
    ref = 'afg_statistics/0123456789abcdef0123456789abcdef.pth'
    return size(state) - size(weights) + len(ref)


def sgemm_time(reps=2):
    """Seconds of one 1024^3 sgemm (2 * 1024^3 flops)."""
    a, b = torch.rand(1024, 1024), torch.rand(1024, 1024)
    a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return (time.perf_counter() - t0) / reps


def rows_read(stats):
    """Expected factor rows one draw of each class reads, and the normals
    it draws (one per row read, D more where the residual is > 0)."""
    out = stats.factor_size.double().clone()
    resid = (stats.residual > 0).double()
    for c in torch.nonzero(stats.tail).flatten().tolist():
        a, m = int(stats.anchor_base[c]), int(stats.anchor_size[c])
        donors = stats.donors[a : a + m]
        out[c] = stats.factor_size[donors].sum(1).double().mean()
        resid[c] = (stats.residual[donors] > 0).any(1).double().mean()
    return out, out + stats.dim * resid


def randn_time(count):
    """Seconds of torch.randn drawing ``count`` float32 normals."""
    torch.randn(count)
    t0 = time.perf_counter()
    torch.randn(count)
    return time.perf_counter() - t0


def generation(args):
    counts, _ = class_counts('ImageNet-LT')
    labels = torch.repeat_interleave(torch.arange(len(counts)), counts)
    sets = {}
    for scale in (1, 2, 4):
        scaled = counts * scale
        tail = tail_classes(scaled, 100 / 1280)  # same classes at any scale
        t0 = time.perf_counter()
        stats = build(scaled, args.dim, tail, seed=scale)
        print(
            f'  {scale}x: {int(scaled.sum()):,} features, statistics '
            f'{stats.memory_bytes() / 2**20:.0f} MiB in '
            f'{time.perf_counter() - t0:.0f} s',
            flush=True,
        )
        sets[scale] = (scaled, stats, rows_read(stats))
    conf = torch.full((len(counts),), 0.6)
    times = {scale: [] for scale in sets}
    flops = {scale: [] for scale in sets}
    sgemm, randn = [], []  # timed between the batches, as they ran
    g = torch.Generator().manual_seed(0)
    for it in range(args.warmup + args.gen_batches):
        batch = labels[torch.randint(len(labels), (args.batch,), generator=g)]
        for scale, (scaled, stats, reads) in sets.items():
            gens = seeded_generators(0, it, 0)
            plan = generation_plan(scaled, batch, generator=gens[0])
            t0 = time.perf_counter()
            feats, _ = generate_features(stats, conf, plan, 0.0, gens)
            elapsed = time.perf_counter() - t0
            assert bool(torch.isfinite(feats).all())
            if it >= args.warmup:
                times[scale].append(elapsed)
                flops[scale].append(2 * args.dim * float(reads[0][plan].sum()))
                if scale == 1:
                    randn.append(randn_time(int(reads[1][plan].sum())))
        if it >= args.warmup:
            sgemm.append(sgemm_time())
    med = {s: statistics.median(t) for s, t in times.items()}
    sgemm_rate = 2 * 1024**3 * len(sgemm) / sum(sgemm)
    rate = sum(flops[1]) / sum(times[1])
    # the rate if drawing its normals were all a batch cost
    bound = sum(flops[1]) / sum(randn)
    return dict(
        generation_scaling_2x=med[2] / med[1],
        generation_scaling_4x=med[4] / med[1],
        generation_over_sgemm=rate / sgemm_rate,
        normals_only_over_sgemm=bound / sgemm_rate,
        per_batch_ms={s: 1000 * m for s, m in med.items()},
        generated_per_batch=len(plan),
    )


def statistics_pass_memory(threads):
    """Figures of ``statistics_pass_memory.py``, run in a child process."""
    script = Path(__file__).with_name('statistics_pass_memory.py')
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / 'pass.json'
        cmd = [sys.executable, str(script), '--json', str(out)]
        subprocess.run(cmd + ['--threads', str(threads or 0)], check=True)
        return json.loads(out.read_text())


def peak_rss_gib():
    """Peak resident memory of this process (KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--dim', type=int, default=DIM, help='D of generation')
    p.add_argument('--batch', type=int, default=512, help='real batch B')
    p.add_argument('--gen-batches', type=int, default=20)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--threads', type=int, default=None)
    p.add_argument('--quick', action='store_true', help='D = 256, 10 batches')
    p.add_argument('--json', help='write the figures to this file')
    args = p.parse_args()
    if args.quick:
        args.dim, args.gen_batches = 256, 10
    if args.threads:
        torch.set_num_threads(args.threads)
    out = {}
    print(f'statistics memory at D = {DIM} (bound {EXACT_ROWS} / r {RANK}):')
    for name in SCALES:
        m = memory(name)
        out[f'memory_over_dense_{name.split()[0].lower()}'] = m['ratio']
        print(
            f'  {name:<17} {m["bytes"] / 2**30:6.2f} GiB / dense '
            f'{m["dense"] / 2**30:7.1f} GiB = 1/{1 / m["ratio"]:.0f} '
            f'(target <= 1/30), counts {m["source"]}'
        )
    extra = checkpoint_extra()
    out['checkpoint_extra_bytes'] = extra
    print(
        f'stage-two checkpoint beyond weights + optimizer, ImageNet-LT: '
        f'{extra / 1024:.1f} KiB (goal < 1 MiB)'
    )
    print(f'generation at D = {args.dim}, B = {args.batch}, balance mode:')
    gen = generation(args)
    out.update(gen)
    ms = gen['per_batch_ms']
    print(
        f'  {gen["generated_per_batch"]} generated per batch; per batch '
        f'1x {ms[1]:.1f} ms, 2x {ms[2]:.1f} ms, 4x {ms[4]:.1f} ms'
    )
    print(
        f'  generation_scaling_2x {gen["generation_scaling_2x"]:.3f} '
        f'(target <= 1.1), generation_scaling_4x '
        f'{gen["generation_scaling_4x"]:.3f} (target <= 1.2)'
    )
    print(
        f'  generation_over_sgemm {gen["generation_over_sgemm"]:.3f} '
        '(goal >= 0.3; 2 D flops per factor row read, over a 1024^3 sgemm)'
    )
    print(
        f'  normals_only_over_sgemm {gen["normals_only_over_sgemm"]:.3f} '
        "(the same figure if torch.randn's draws were a batch's only cost)"
    )
    stats_pass = statistics_pass_memory(args.threads)
    peak, rows = stats_pass['peak_anon_bytes'], stats_pass['rows_bytes']
    out['statistics_pass_peak_gib_inat'] = peak / 2**30
    out['statistics_pass_over_rows_inat'] = peak / rows
    # the child's own peak: RUSAGE_CHILDREN would count this process's
    # resident memory at the fork
    own, child = peak_rss_gib(), stats_pass['peak_rss_bytes'] / 2**30
    out['peak_rss_gib'] = max(own, child)
    print(
        f'peak resident memory: this process {own:.2f} GiB, the statistics '
        f'pass child {child:.2f} GiB (target < 4 GiB)'
    )
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(out, f, indent=1)


if __name__ == '__main__':
    main()
