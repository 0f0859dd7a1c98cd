"""Stage-two iteration time of GLAG (AFG + KD) against plain cRT, and the
per-epoch speed-up of the feature cache.

Setting (the issue's): a frozen mmpretrain ResNet-50 trunk (frozen_stages=4,
norm_eval; random weights, timing does not depend on them), a 1,000-class
head on 2,048-d features, batch 64, CPU. The AFG head holds ImageNet-LT-
scale statistics: synthetic non-negative features with the real per-class
training counts from ``../shared/data/lt-splits/ImageNet_LT.json`` (an
exponential profile with the same C, N, n_max and n_min otherwise), built by
the statistics pass of the plugin (exact rows up to 100 per class, a rank-64
factor above), and the KD teacher is a 1,000 x 2,048 linear layer.

Each measured iteration is ``model.train_step`` (forward, generation, loss,
backward, SGD step) on a fixed batch, as the Runner calls it; data loading
is not included. The baselines are timed in the same run, interleaved in
rounds with GLAG so that the machine's load affects both alike (the cached
models in rounds of their own):

* ``crt``: ``LinearClsHead``, real features only;
* ``afg+kd (ratio)``: ``AFGHead(generation='ratio')`` (one generated feature
  per real one, the shipped configs' mode with a class-aware sampler) plus
  ``GLAGDistillHook``'s teacher;
* ``afg+kd (balance)``: GLAG's own setting, every class topped up to n_max
  (about 10 generated features per real one at ImageNet-LT's N), with
  ``max_generated`` = B: B of them are drawn per batch and weighted so the
  loss equals the uncapped one in expectation (uncapped, the classifier
  alone runs on 11x the rows of cRT's);
* ``crt on 2B rows`` (cached only): cRT on twice the rows, what AFG's
  classifier computes in 'ratio' mode, without generation or KD: the
  floor of the 'ratio' figure.

The cache rows run the same models (``StageTwoClassifier``) on batches of
cached 2,048-d features, as :class:`~glag_mm.engine.StageTwoTrainLoop`
feeds them, and the teacher reads its logits of the batch's cached
features from the table ``GLAGDistillHook`` computes once on a CPU run.
Per-epoch speed-up = uncached / cached iteration time; the cache also
costs one trunk pass over the training set (about one forward-only epoch),
reported amortised over 40 epochs.

Run::

    OMP_NUM_THREADS=1 python benchmarks/stage_two_overhead.py --threads 1
    OMP_NUM_THREADS=1 python benchmarks/stage_two_overhead.py --quick \
        --json overhead.json

(one thread is the least disturbed by other jobs on a shared machine;
``--quick``: 112-px images, fewer timed iterations, a few minutes on two
cores). ``--json FILE`` writes the ratios (AFG + KD over cRT) under
``cached_ratio_mode``, ``cached_balance_mode`` and ``uncached_ratio_mode``
(and that floor under ``cached_classifier_2b_floor``).
Absolute times depend on the machine and its load; compare the ratios.
"""

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import glag_mm  # noqa: F401
from glag_mm.core.calibration import tail_classes
from glag_mm.engine import LinearTeacher
from glag_mm.engine.afg_statistics import build_statistics

REPO_ROOT = Path(__file__).resolve().parents[1]
COUNTS_FILE = REPO_ROOT.parent / 'shared' / 'data' / 'lt-splits'
COUNTS_FILE = COUNTS_FILE / 'ImageNet_LT.json'
C, D, N, N_MAX, N_MIN = 1000, 2048, 115846, 1280, 5


def class_counts():
    if COUNTS_FILE.is_file():
        counts = torch.tensor(json.loads(COUNTS_FILE.read_text()))
        return counts, f'real ImageNet-LT counts ({COUNTS_FILE.name})'
    pos = torch.arange(C, dtype=torch.float64) / (C - 1)
    lo, hi = 0.05, 20.0
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        total = (N_MAX * (N_MIN / N_MAX) ** pos.pow(mid)).floor().sum()
        lo, hi = (mid, hi) if total < N else (lo, mid)
    counts = (N_MAX * (N_MIN / N_MAX) ** pos.pow(lo)).floor().long()
    return counts, 'ImageNet_LT.json absent: exponential profile'


def build(head):
    return MODELS.build(
        dict(
            type='StageTwoClassifier',
            data_preprocessor=dict(
                type='ClsDataPreprocessor',
                mean=[123.675, 116.28, 103.53],
                std=[58.395, 57.12, 57.375],
                num_classes=C,
            ),
            backbone=dict(
                type='ResNet',
                depth=50,
                frozen_stages=4,
                norm_eval=True,
                out_indices=(3,),
            ),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(num_classes=C, in_channels=D, **head),
        )
    )


def fill_statistics(head, counts):
    """Synthetic post-ReLU features, class-dependent means, real counts."""
    g = torch.Generator().manual_seed(0)
    centres = torch.rand(C, D, generator=g)

    def batches():
        start = 0
        for c, n in enumerate(counts.tolist()):
            feats = (centres[c] + 0.5 * torch.randn(n, D, generator=g)).relu()
            yield feats, torch.full((n,), c), torch.arange(start, start + n)
            start += n

    t0 = time.perf_counter()
    head.set_statistics(build_statistics(head, batches(), all_gather=False))
    return time.perf_counter() - t0


def batch(size, image, labels, cached=None):
    """Images, or with ``cached`` = (features, rows) those cached rows."""
    samples = [DataSample().set_gt_label(int(y)) for y in labels]
    if cached is not None:
        features, rows = cached
        inputs = features[rows]
        for sample, i in zip(samples, rows.tolist()):
            sample.set_metainfo(dict(sample_idx=i))
    else:
        inputs = torch.randint(
            0, 256, (size, 3, image, image), dtype=torch.uint8
        )
    return dict(inputs=inputs, data_samples=samples)


def timed(model, data, optim, iters):
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        model.train_step(data, optim_wrapper=optim)
        times.append(time.perf_counter() - t0)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--iters', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--rounds', type=int, default=20)
    parser.add_argument('--batch', type=int, default=64)
    parser.add_argument('--image-size', type=int, default=224)
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument(
        '--quick', action='store_true', help='112 px, 6 rounds of 1 iter'
    )
    parser.add_argument('--json', help='write the ratios to this file')
    parser.add_argument(
        '--cached-factor',
        type=int,
        default=20,
        help='cached iterations timed per uncached one',
    )
    args = parser.parse_args()
    if args.quick:
        args.image_size, args.iters, args.rounds = 112, 6, 6
        args.warmup = 2
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    counts, source = class_counts()
    print(
        f'{source}: C={C}, N={int(counts.sum())}, max {int(counts.max())}, '
        f'min {int(counts.min())}; batch {args.batch}, '
        f'{args.image_size}px, {torch.get_num_threads()} thread(s)'
    )
    hub = MessageHub.get_current_instance()
    hub.update_info('max_iters', 1000)
    hub.update_info('iter', 500)  # beta(u) > 0: the KD term is computed

    weight, head_classes = torch.randn(C, D) * 0.01, ~tail_classes(counts, 100)
    teacher = LinearTeacher(weight, torch.zeros(C), head_classes)
    # on the cache, GLAGDistillHook reads the teacher's logits of each
    # training feature, computed once (N x C float32 on a CPU run)
    features = torch.rand(int(counts.sum()), D)
    cached_teacher = LinearTeacher(weight, torch.zeros(C), head_classes)
    t0 = time.perf_counter()
    cached_teacher.cache(features)
    print(
        f'teacher logits of the {features.shape[0]} cached features: '
        f'{cached_teacher.table.numel() * 4 / 2**20:.0f} MiB in '
        f'{time.perf_counter() - t0:.1f} s'
    )
    specs = {
        'crt': dict(type='LinearClsHead'),
        'afg+kd (ratio)': dict(type='AFGHead', generation='ratio'),
        'afg+kd (balance)': dict(
            type='AFGHead', generation='balance', max_generated=args.batch
        ),
    }
    models, first = {}, None
    for name, head_cfg in specs.items():
        for cached in (False, True):
            model = build(head_cfg)
            if head_cfg['type'] == 'AFGHead':
                if first is None:
                    first = model.head
                    t = fill_statistics(first, counts)
                    gib = first.statistics.memory_bytes() / 2**30
                    print(
                        f'statistics: {gib:.2f} GiB, pass + factors + '
                        f'support sets {t:.1f} s'
                    )
                else:  # share the statistics (read-only during training)
                    model.head.set_statistics(first.statistics)
                model.head.set_teacher(cached_teacher if cached else teacher)
            models[name, cached] = model
    # the floor of 'ratio' mode: cRT's classifier on 2B cached rows, the
    # rows AFG's classifier sees, with neither generation nor KD
    floor = ('crt on 2B rows', True)
    models[floor] = build(specs['crt'])
    labels = torch.multinomial(counts.float(), args.batch, replacement=True)
    rows = torch.randint(features.shape[0], (args.batch,))
    data = {
        False: batch(args.batch, args.image_size, labels),
        True: batch(args.batch, 0, labels, (features, rows)),
        floor: batch(
            2 * args.batch, 0, labels.repeat(2), (features, rows.repeat(2))
        ),
    }
    optims = {
        key: OptimWrapper(
            torch.optim.SGD(
                [p for p in m.parameters() if p.requires_grad],
                lr=0.01,
                momentum=0.9,
            )
        )
        for key, m in models.items()
    }
    for key, model in models.items():
        model.train()
        timed(model, data.get(key, data[key[1]]), optims[key], args.warmup)
    per_round = max(1, args.iters // args.rounds)
    times = {key: [] for key in models}
    # the cached models in rounds of their own, as a cached run never runs
    # the trunk between its iterations (it would flush the CPU caches)
    for cached in (False, True):
        for _ in range(args.rounds):
            for key, model in models.items():
                if key[1] != cached:
                    continue
                # a cached iteration is ~200x cheaper: time more of them
                reps = per_round * (args.cached_factor if cached else 1)
                batch_ = data.get(key, data[key[1]])
                times[key] += timed(model, batch_, optims[key], reps)
    med = {key: statistics.median(t) for key, t in times.items()}

    base = med['crt', False]
    print(
        f'\n{"stage-two iteration":<20}{"uncached s":>12}{"ratio":>8}'
        f'{"cached s":>12}{"ratio":>8}{"speed-up":>10}{"40 ep":>8}'
    )
    for name in specs:
        unc, cac = med[name, False], med[name, True]
        # 40 epochs on the cache plus one trunk pass to build it (~ the
        # forward-only part of an uncached epoch, bounded by a whole one)
        amortised = 40 * unc / (unc + 40 * cac)
        print(
            f'{name:<20}{unc:>12.3f}{unc / base:>8.3f}{cac:>12.4f}'
            f'{cac / med["crt", True]:>8.2f}{unc / cac:>9.0f}x'
            f'{amortised:>7.1f}x'
        )
    print(
        f'{floor[0]:<20}{"":>20}{med[floor]:>12.4f}'
        f'{med[floor] / med["crt", True]:>8.2f}'
    )
    print(
        f'\n{per_round * args.rounds} timed iterations per uncached row '
        f'({per_round * args.rounds * args.cached_factor} cached) after '
        f'{args.warmup} warm-up, median; ratios against crt of the same '
        'column; speed-up = uncached / cached per iteration (= per epoch);'
        ' "40 ep" includes building the cache.'
    )
    ratios = dict(
        cached_ratio_mode=med['afg+kd (ratio)', True] / med['crt', True],
        cached_balance_mode=med['afg+kd (balance)', True] / med['crt', True],
        uncached_ratio_mode=med['afg+kd (ratio)', False] / base,
        cached_classifier_2b_floor=med[floor] / med['crt', True],
    )
    targets = dict(
        cached_ratio_mode=1.5,
        cached_balance_mode=3.0,
        uncached_ratio_mode=1.05,
    )
    for key, value in ratios.items():
        if key not in targets:
            print(f'{key}: {value:.3f}')
            continue
        verdict = 'met' if value <= targets[key] else 'NOT met'
        print(f'{key}: {value:.3f} (target <= {targets[key]}): {verdict}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(ratios, f, indent=1)


if __name__ == '__main__':
    main()
