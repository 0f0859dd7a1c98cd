"""Cost of LongTailAccuracy's options per evaluated sample.

Random softmax scores for C = 1,000 (ImageNet-LT) and C = 8,142
(iNaturalist 2018) classes go through mmengine's Evaluator in batches of
64 (``process`` per batch, then ``evaluate``), once per configuration:

* baseline: labels and group accuracies only (``ece_bins=0``);
* ECE: the default, with the 15-bin reliability table;
* post-hoc tau = 1 (one adjusted label per sample);
* post-hoc tau chosen on validation over the default 21-value grid;
* GALA re-balancing (keeps the C scores of every sample).

Each time is printed with its ratio to the baseline measured in the same
process. Run::

    OMP_NUM_THREADS=1 python benchmarks/metric_overhead.py [--samples 2000]

Absolute times depend on the machine and its load; compare the ratios.
"""

import argparse
import time
import uuid

import torch
from mmengine.evaluator import Evaluator
from mmengine.logging import MessageHub
from mmpretrain.structures import DataSample

import glag_mm  # noqa: F401  (registers the metric)
from glag_mm.evaluation import LongTailAccuracy

CONFIGS = {
    'baseline (labels, groups)': dict(ece_bins=0),
    'ECE + reliability (default)': dict(),
    'post-hoc tau = 1': dict(ece_bins=0, posthoc_tau=1.0),
    "post-hoc tau 'val' (21 taus)": dict(
        ece_bins=0, posthoc_tau='val', select_posthoc_tau=True
    ),
    'GALA re-balancing': dict(ece_bins=0, rebalance_tau=1.0),
}


def batches(classes, samples, batch_size=64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, samples, batch_size):
        n = min(batch_size, samples - start)
        scores = torch.softmax(torch.randn(n, classes, generator=gen), 1)
        gt = torch.randint(0, classes, (n,), generator=gen)
        out.append(
            [
                DataSample()
                .set_gt_label(int(y))
                .set_pred_score(s)
                .set_pred_label(int(s.argmax()))
                for s, y in zip(scores, gt)
            ]
        )
    return out


def run(classes, samples, options, data):
    counts = [max(2, int(1000 * 0.995**c)) for c in range(classes)]
    metric = LongTailAccuracy(class_counts=counts, **options)
    evaluator = Evaluator(metric)
    start = time.perf_counter()
    for batch in data:
        evaluator.process(batch)
    evaluator.evaluate(samples)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--samples', type=int, default=2000)
    args = parser.parse_args(argv)
    MessageHub.get_instance(f'metric_overhead_{uuid.uuid4().hex}')
    print('| classes | configuration | ms per 1,000 samples | vs baseline |')
    print('|---:|---|---:|---:|')
    for classes in (1000, 8142):
        data = batches(classes, args.samples)
        base = None
        for name, options in CONFIGS.items():
            seconds = run(classes, args.samples, options, data)
            base = seconds if base is None else base
            per_k = 1000 * seconds / args.samples * 1000
            print(
                f'| {classes} | {name} | {per_k:.1f} | {seconds / base:.2f} |'
            )


if __name__ == '__main__':
    main()
