"""Scale benchmark of the Adaptive Feature Generator's core (stage two).

Synthetic non-negative features with the real per-class training counts of
ImageNet-LT (1,000 classes, 115,846 images) and iNaturalist 2018 (8,142
classes, 437,513 images), read from ``../shared/data/lt-splits`` next to the
repository (an exponential profile with the same C, N, n_max and n_min is
used when the files are absent, and the table says so). For each scale it
measures, each against a baseline timed in the same process:

* statistics memory: the bank's tensors, against dense per-class
  covariances (C x D x D float32) that the method must never form;
* peak process memory (ru_maxrss), against the process before the pass;
* statistics-pass time: Tukey transform + streaming ``add`` in batches +
  ``finalize``, against a plain per-class mean pass over the same batches;
* generated features per second: ``generation_plan`` on instance-balanced
  real batches, then ``generate_features`` (calibrated tail classes from
  precomputed support sets + own-class sampling), against ``torch.randn``
  of the same output size. The one-off support-set precomputation
  (``anchor_support``) is reported separately.

Every scale runs in its own child process so that its peak memory is its
own. Run::

    OMP_NUM_THREADS=1 python benchmarks/afg_scale.py --scale both

Absolute times depend on the machine and its load; compare the ratios.
"""

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SPLITS = REPO_ROOT.parent / 'shared' / 'data' / 'lt-splits'
SCALES = {
    # name: (split file, C, N, n_max, n_min) of the published training sets
    'imagenet': ('ImageNet_LT.json', 1000, 115846, 1280, 5),
    'inat': ('iNaturalist18.json', 8142, 437513, 1000, 2),
}
GiB = 2**30
MiB = 2**20


def exponential_profile(classes, total, n_max, n_min):
    """n_i = n_max (n_min / n_max) ** ((i / (C - 1)) ** p), p fitted to N."""
    ratio = n_min / n_max
    pos = torch.arange(classes, dtype=torch.float64) / (classes - 1)

    def counts(p):
        return (n_max * ratio ** pos.pow(p)).floor().clamp(min=n_min)

    lo, hi = 0.05, 20.0  # larger p -> more images
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if counts(mid).sum() < total else (lo, mid)
    return counts(math.sqrt(lo * hi)).long()


def class_counts(scale):
    name, classes, total, n_max, n_min = SCALES[scale]
    path = SPLITS / name
    if path.is_file():
        counts = torch.tensor(json.loads(path.read_text()))
        return counts, f'real counts ({name})'
    counts = exponential_profile(classes, total, n_max, n_min)
    return counts, (
        f'{name} not found: exponential profile with C={classes}, '
        f'N~{total}, n_max={n_max}, n_min={n_min}'
    )


def peak_rss():
    """Peak resident memory of this process in bytes (Linux: KiB units)."""
    scale = 1 if sys.platform == 'darwin' else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def run_scale(args):
    from glag_mm.core import (
        ClassFeatureBank,
        anchor_support,
        generate_features,
        generation_plan,
        tail_classes,
        tukey_transform,
    )

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    counts, source = class_counts(args.child)
    num_classes, total, dim = counts.numel(), int(counts.sum()), args.dim
    labels = torch.repeat_interleave(torch.arange(num_classes), counts)
    order = torch.randperm(total)
    centres = torch.randn(num_classes, dim).relu_()  # synthetic class means
    rss_before = peak_rss()

    # statistics pass ---------------------------------------------------
    bank = ClassFeatureBank(num_classes, dim, torch.float16)
    sums = torch.zeros(num_classes, dim)
    t_bank = t_base = 0.0
    for a in range(0, total, args.batch):
        idx = order[a : a + args.batch]
        y = labels[idx]
        x = (centres[y] + 0.5 * torch.randn(len(y), dim)).relu_()
        t0 = time.perf_counter()
        bank.add(tukey_transform(x, 0.5, check=False), y, idx)
        t1 = time.perf_counter()
        sums.index_add_(0, y, x)
        t2 = time.perf_counter()
        t_bank += t1 - t0
        t_base += t2 - t1
        del x
    t0 = time.perf_counter()
    bank.finalize(all_gather=False)
    t1 = time.perf_counter()
    _ = sums / counts[:, None]
    t_base += time.perf_counter() - t1
    t_bank += t1 - t0
    del sums, centres
    rss_stats = peak_rss()

    # generation --------------------------------------------------------
    tail = tail_classes(bank.counts, 100)
    conf = torch.full((num_classes,), 0.6)
    t0 = time.perf_counter()
    support = anchor_support(bank, tail, k=3)
    t_support = time.perf_counter() - t0
    gen = torch.Generator().manual_seed(1)
    perm = labels[torch.randperm(total)]
    made, t_gen, t_randn = 0, 0.0, 0.0
    for b in range(args.gen_batches):
        batch = perm[b * args.batch : (b + 1) * args.batch]
        plan = generation_plan(bank.counts, batch, generator=gen)
        t0 = time.perf_counter()
        feats = generate_features(
            bank, plan, tail, conf, k=3, generator=gen, row_support=support
        )
        t1 = time.perf_counter()
        ref = torch.randn(len(plan), dim)
        t2 = time.perf_counter()
        assert feats.shape == ref.shape and bool(torch.isfinite(feats).all())
        made += len(plan)
        t_gen += t1 - t0
        t_randn += t2 - t1
        del feats, ref
    return {
        'scale': args.child,
        'source': source,
        'classes': num_classes,
        'features': total,
        'dim': dim,
        'tail_classes': int(tail.sum()),
        'tail_rows': int(support[0][:, 0].ge(0).sum()),
        'bank_bytes': bank.memory_bytes(),
        'dense_cov_bytes': num_classes * dim * dim * 4,
        'fp32_feature_bytes': total * dim * 4,
        'rss_before': rss_before,
        'rss_stats': rss_stats,
        'rss_peak': peak_rss(),
        't_stats': t_bank,
        't_mean_pass': t_base,
        't_support': t_support,
        'generated': made,
        'gen_per_batch': made / args.gen_batches,
        'batch': args.batch,
        't_gen': t_gen,
        't_randn': t_randn,
    }


def table(results):
    rows = [
        ('statistics memory', lambda r: f'{r["bank_bytes"] / MiB:,.0f} MiB'),
        (
            '  / dense covariances',
            lambda r: (
                f'{r["bank_bytes"] / r["dense_cov_bytes"]:.4f} '
                f'(of {r["dense_cov_bytes"] / GiB:,.1f} GiB)'
            ),
        ),
        (
            '  / fp32 feature copy',
            lambda r: (
                f'{r["bank_bytes"] / r["fp32_feature_bytes"]:.2f} '
                f'(of {r["fp32_feature_bytes"] / GiB:.2f} GiB)'
            ),
        ),
        ('peak process memory', lambda r: f'{r["rss_peak"] / GiB:.2f} GiB'),
        (
            '  / before the pass',
            lambda r: (
                f'{r["rss_peak"] / r["rss_before"]:.2f} '
                f'(of {r["rss_before"] / GiB:.2f} GiB)'
            ),
        ),
        ('statistics pass', lambda r: f'{r["t_stats"]:.1f} s'),
        (
            '  / plain mean pass',
            lambda r: (
                f'{r["t_stats"] / r["t_mean_pass"]:.1f} '
                f'(of {r["t_mean_pass"]:.1f} s)'
            ),
        ),
        (
            'support sets (once)',
            lambda r: f'{r["t_support"]:.1f} s, {r["tail_rows"]:,} tail rows',
        ),
        (
            'generated per batch',
            lambda r: f'{r["gen_per_batch"]:,.0f} (B={r["batch"]})',
        ),
        (
            'generated features/s',
            lambda r: f'{r["generated"] / r["t_gen"]:,.0f}',
        ),
        (
            '  randn / generation',
            lambda r: (
                f'{r["t_randn"] / r["t_gen"]:.3f} '
                f'(randn {r["generated"] / r["t_randn"]:,.0f}/s)'
            ),
        ),
    ]
    head = ['', *(f'{r["scale"]} C={r["classes"]:,}' for r in results)]
    body = [[name, *(fmt(r) for r in results)] for name, fmt in rows]
    body.insert(
        0,
        [
            'features x dim',
            *(f'{r["features"]:,} x {r["dim"]}' for r in results),
        ],
    )
    widths = [
        max(len(line[i]) for line in [head, *body]) for i in range(len(head))
    ]
    out = [' | '.join(c.ljust(w) for c, w in zip(head, widths))]
    out.append('-|-'.join('-' * w for w in widths))
    out += [
        ' | '.join(c.ljust(w) for c, w in zip(line, widths)) for line in body
    ]
    return '\n'.join(out)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument(
        '--scale', choices=['imagenet', 'inat', 'both'], default='both'
    )
    p.add_argument('--dim', type=int, default=2048)
    p.add_argument('--batch', type=int, default=512, help='real batch size')
    p.add_argument(
        '--gen-batches', type=int, default=10, help='training batches timed'
    )
    p.add_argument('--threads', type=int, default=torch.get_num_threads())
    p.add_argument('--child', choices=list(SCALES), help=argparse.SUPPRESS)
    return p.parse_args()


if __name__ == '__main__':
    ARGS = parse_args()
    if ARGS.child:
        print(json.dumps(run_scale(ARGS)))
        sys.exit(0)
    scales = ['imagenet', 'inat'] if ARGS.scale == 'both' else [ARGS.scale]
    results = []
    for scale in scales:
        cmd = [
            sys.executable,
            __file__,
            '--child',
            scale,
            '--dim',
            str(ARGS.dim),
            '--batch',
            str(ARGS.batch),
            '--gen-batches',
            str(ARGS.gen_batches),
            '--threads',
            str(ARGS.threads),
        ]
        print(f'running {scale} scale ...', flush=True)
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f'{scale} failed:\n{done.stderr}')
        res = json.loads(done.stdout.strip().splitlines()[-1])
        print(f'  {res["source"]}', flush=True)
        results.append(res)
    print()
    print(table(results))
    print(
        '\nratios: memory / dense per-class covariances and / a float32 '
        'copy of all features; peak RSS / RSS before the statistics pass; '
        'statistics pass (Tukey + add + finalize) / a plain per-class mean '
        'pass over the same batches; randn / generation = torch.randn of '
        'the same output size per batch, timed in the same process.'
    )
