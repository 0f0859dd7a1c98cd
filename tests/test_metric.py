"""LongTailAccuracy: groups, post-hoc adjustment, re-balancing, DDP, Runner."""

import copy
import json
import math
import os
import pickle
import uuid

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from mmengine.evaluator import Evaluator
from mmengine.hooks import Hook
from mmengine.logging import MessageHub
from mmengine.runner import Runner
from mmpretrain.structures import DataSample

from glag_mm.evaluation import (
    LongTailAccuracy,
    PerClassAccuracy,
    posthoc_labels_over_grid,
    rebalanced_labels,
    shot_groups,
)
from glag_mm.runtime import set_train_class_counts

COUNTS = [500, 200, 60, 30, 10, 5]
# Hand-built evaluation set: (ground truth, prediction) pairs per class.
#   class 0: 3 of 4 right (75 %)      class 3: 1 of 3 right (33.3 %)
#   class 1: 1 of 2 right (50 %)      class 4: 1 of 1 right (100 %)
#   class 2: 2 of 2 right (100 %)     class 5: 0 of 2 right (0 %)
PAIRS = (
    [(0, 0), (0, 0), (0, 0), (0, 1)]
    + [(1, 1), (1, 0)]
    + [(2, 2), (2, 2)]
    + [(3, 3), (3, 0), (3, 0)]
    + [(4, 4)]
    + [(5, 0), (5, 1)]
)
PER_CLASS = [75.0, 50.0, 100.0, 100 / 3, 100.0, 0.0]


@pytest.fixture
def hub():
    """A fresh current MessageHub (no training counts published)."""
    return MessageHub.get_instance(f'test_metric_{uuid.uuid4().hex}')


def samples_from_labels(pairs):
    return [DataSample().set_gt_label(g).set_pred_label(p) for g, p in pairs]


def samples_from_scores(scores, gt):
    return [
        DataSample()
        .set_gt_label(int(y))
        .set_pred_score(s)
        .set_pred_label(int(s.argmax()))
        for s, y in zip(scores, gt)
    ]


def evaluate(metric, samples, batch_size=4, size=None):
    """Run ``metric`` through mmengine's Evaluator (``size``: dataset size)."""
    evaluator = Evaluator(metric)
    for start in range(0, len(samples), batch_size):
        evaluator.process(samples[start : start + batch_size])
    return evaluator.evaluate(len(samples) if size is None else size)


def direct_groups(pred, gt, counts, many=100, few=20):
    """Group accuracies by plain loops: mean over classes of class accuracy."""
    acc = {}
    for c in range(len(counts)):
        hits = [p == g for p, g in zip(pred, gt) if g == c]
        if hits:
            acc[c] = 100.0 * sum(hits) / len(hits)
    out = {}
    for name, test in (
        ('many', lambda n: n > many),
        ('medium', lambda n: few <= n <= many),
        ('few', lambda n: n < few),
    ):
        values = [a for c, a in acc.items() if test(counts[c])]
        out[name] = sum(values) / len(values) if values else math.nan
    out['top1'] = 100.0 * sum(p == g for p, g in zip(pred, gt)) / len(gt)
    return out


def test_groups_on_hand_built_case(hub):
    metrics = evaluate(
        LongTailAccuracy(class_counts=COUNTS), samples_from_labels(PAIRS)
    )
    assert list(metrics) == [
        'lt/top1',
        'lt/class_mean',
        'lt/many',
        'lt/medium',
        'lt/few',
        'lt/per_class',
    ]
    assert metrics['lt/top1'] == pytest.approx(100 * 8 / 14)
    # the mean of the six class accuracies, not the sample mean 8 / 14
    assert metrics['lt/class_mean'] == pytest.approx(
        (75 + 50 + 100 + 100 / 3 + 100 + 0) / 6
    )
    # mean of per-class accuracies, not of samples (sample mean: 4/6)
    assert metrics['lt/many'] == pytest.approx((75 + 50) / 2)
    assert metrics['lt/medium'] == pytest.approx((100 + 100 / 3) / 2)
    assert metrics['lt/few'] == pytest.approx((100 + 0) / 2)
    assert metrics['lt/per_class'] == pytest.approx(PER_CLASS)
    assert isinstance(metrics['lt/per_class'], list)


def test_thresholds_are_configurable(hub):
    metric = LongTailAccuracy(
        class_counts=COUNTS, many_threshold=50, few_threshold=10
    )
    metrics = evaluate(metric, samples_from_labels(PAIRS))
    # many: counts 500, 200, 60; medium: 30, 10 (10 is not < 10); few: 5
    assert metrics['lt/many'] == pytest.approx((75 + 50 + 100) / 3)
    assert metrics['lt/medium'] == pytest.approx((100 / 3 + 100) / 2)
    assert metrics['lt/few'] == pytest.approx(0.0)
    groups = shot_groups(COUNTS, 50, 10)
    assert groups['medium'].tolist() == [False] * 3 + [True] * 2 + [False]


def test_empty_group_is_left_out_and_unevaluated_class_gives_nan(hub):
    # class 5 has no evaluation sample: left out of the few-shot mean
    pairs = [p for p in PAIRS if p[0] != 5]
    metrics = evaluate(
        LongTailAccuracy(class_counts=COUNTS), samples_from_labels(pairs)
    )
    assert metrics['lt/few'] == pytest.approx(100.0)
    assert math.isnan(metrics['lt/per_class'][5])
    # the class mean is over the five evaluated classes
    assert metrics['lt/class_mean'] == pytest.approx(
        (75 + 50 + 100 + 100 / 3 + 100) / 5
    )
    # no class has fewer than 0 training images: the few group is empty
    metrics = evaluate(
        LongTailAccuracy(class_counts=COUNTS, few_threshold=0),
        samples_from_labels(PAIRS),
    )
    # an empty group is left out (a NaN would not be strict JSON)
    assert list(metrics) == [
        'lt/top1',
        'lt/class_mean',
        'lt/many',
        'lt/medium',
        'lt/per_class',
    ]
    assert metrics['lt/medium'] == pytest.approx((100 + 100 / 3 + 100 + 0) / 4)
    # a group whose classes have no evaluation sample is left out too
    pairs = [p for p in PAIRS if p[0] not in (4, 5)]
    metrics = evaluate(
        LongTailAccuracy(class_counts=COUNTS, posthoc_tau=1.0),
        samples_from_scores(
            torch.eye(6)[[p for _, p in pairs]], [g for g, _ in pairs]
        ),
    )
    assert 'lt/few' not in metrics and 'lt/few_posthoc' not in metrics
    assert 'lt/ece_few' not in metrics and 'lt/ece_many' in metrics
    assert math.isnan(metrics['lt/per_class'][4])


def test_class_counts_from_message_hub_match_explicit(hub):
    samples = samples_from_labels(PAIRS)
    with pytest.raises(ValueError, match='ClassCountsHook'):
        evaluate(LongTailAccuracy(), samples)
    set_train_class_counts(COUNTS)
    from_hub = evaluate(LongTailAccuracy(), samples)
    explicit = evaluate(LongTailAccuracy(class_counts=COUNTS), samples)
    assert from_hub == explicit
    # explicit counts win over the published ones
    set_train_class_counts([1] * 6)
    assert evaluate(LongTailAccuracy(class_counts=COUNTS), samples) == (
        explicit
    )


def test_wrong_length_and_bad_arguments(hub):
    scores = torch.softmax(torch.randn(4, 6), dim=1)
    samples = samples_from_scores(scores, [0, 1, 2, 3])
    with pytest.raises(ValueError, match='num_classes=6'):
        evaluate(LongTailAccuracy(class_counts=COUNTS[:5]), samples)
    set_train_class_counts(COUNTS + [3])
    with pytest.raises(ValueError, match='num_classes=6'):
        evaluate(LongTailAccuracy(), samples)
    # labels only (no scores): the labels are checked against the counts
    with pytest.raises(ValueError, match=r'\[0, 5\)'):
        evaluate(
            LongTailAccuracy(class_counts=COUNTS[:5]),
            samples_from_labels(PAIRS),
        )
    with pytest.raises(ValueError, match='zero training images'):
        LongTailAccuracy(class_counts=[3, 0, 1])
    with pytest.raises(ValueError, match='few_threshold'):
        LongTailAccuracy(many_threshold=10, few_threshold=20)
    with pytest.raises(ValueError, match='many_threshold'):
        LongTailAccuracy(many_threshold=-1)
    with pytest.raises(ValueError, match='rebalance_tau'):
        LongTailAccuracy(rebalance_tau=-0.5)
    with pytest.raises(TypeError, match='posthoc_tau'):
        LongTailAccuracy(posthoc_tau='1')
    with pytest.raises(ValueError, match='pred_score'):
        evaluate(
            LongTailAccuracy(class_counts=COUNTS, posthoc_tau=1.0),
            samples_from_labels(PAIRS),
        )


def test_rebalancing_on_hand_built_matrix(hub):
    scores = torch.tensor(
        [
            [0.60, 0.35, 0.05],
            [0.80, 0.10, 0.10],
            [0.50, 0.20, 0.30],
            [0.70, 0.25, 0.05],
        ]
    )
    # s = [2.6, 0.9, 0.5]. tau = 1: row 0 -> [.231, .389, .100] -> 1;
    # row 1 -> [.308, .111, .200] -> 0; row 2 -> [.192, .222, .600] -> 2;
    # row 3 -> [.269, .278, .100] -> 1.
    assert rebalanced_labels(scores, 1.0).tolist() == [1, 0, 2, 1]
    # tau = 0.5, s**0.5 = [1.612, 0.949, 0.707]: row 0 -> [.372, .369,
    # .071] -> 0; row 2 -> [.310, .211, .424] -> 2; row 3 -> [.434, .264,
    # .071] -> 0.
    assert rebalanced_labels(scores, 0.5).tolist() == [0, 0, 2, 0]
    assert rebalanced_labels(scores, 0.0).tolist() == [0, 0, 0, 0]

    gt = [1, 0, 2, 0]
    counts = [300, 50, 10]  # many {0}, medium {1}, few {2}
    metrics = evaluate(
        LongTailAccuracy(class_counts=counts, rebalance_tau=1.0),
        samples_from_scores(scores, gt),
        batch_size=3,
    )
    # plain argmax is class 0 everywhere: right on rows 1 and 3 only
    assert metrics['lt/top1'] == pytest.approx(50.0)
    assert metrics['lt/many'] == pytest.approx(100.0)
    assert metrics['lt/medium'] == pytest.approx(0.0)
    assert metrics['lt/top1_rebalanced'] == pytest.approx(75.0)
    assert metrics['lt/many_rebalanced'] == pytest.approx(50.0)
    assert metrics['lt/medium_rebalanced'] == pytest.approx(100.0)
    assert metrics['lt/few_rebalanced'] == pytest.approx(100.0)
    assert metrics['lt/few'] == pytest.approx(0.0)


def test_posthoc_equals_logit_adjustment_computed_directly(hub, tmp_path):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(300, 6, generator=gen) * 2
    gt = torch.randint(0, 6, (300,), generator=gen)
    tau = 1.0
    log_pi = torch.tensor(COUNTS, dtype=torch.float64)
    log_pi = (log_pi / log_pi.sum()).log()
    expected = (logits.double() - tau * log_pi).argmax(dim=1)
    plain = logits.argmax(dim=1)
    assert (expected != plain).sum() > 20  # the adjustment matters here
    scores = torch.softmax(logits, dim=1)
    labels = posthoc_labels_over_grid(scores, log_pi, [tau])[0]
    assert torch.equal(labels, expected)

    set_train_class_counts(COUNTS)
    metrics = evaluate(
        LongTailAccuracy(posthoc_tau=tau), samples_from_scores(scores, gt)
    )
    want = direct_groups(expected.tolist(), gt.tolist(), COUNTS)
    got_plain = direct_groups(plain.tolist(), gt.tolist(), COUNTS)
    for name in ('top1', 'many', 'medium', 'few'):
        assert metrics[f'lt/{name}_posthoc'] == pytest.approx(want[name])
        assert metrics[f'lt/{name}'] == pytest.approx(got_plain[name])

    # samples_file: the per-image labels of the evaluation, in its order
    path = tmp_path / 'out' / 'samples.json'
    metric = LongTailAccuracy(
        posthoc_tau=tau, rebalance_tau=1.0, samples_file=str(path)
    )
    evaluate(metric, samples_from_scores(scores, gt))
    samples = json.loads(path.read_text())
    assert samples == dict(
        gt=gt.tolist(),
        pred=plain.tolist(),
        pred_posthoc=expected.tolist(),
        pred_rebalanced=rebalanced_labels(scores, 1.0).tolist(),
    )
    with pytest.raises(TypeError, match='samples_file must be a path'):
        LongTailAccuracy(samples_file=3)


def test_per_class_accuracy_prints_short_and_pickles_plain():
    values = PerClassAccuracy([10.0, 20.0, math.nan, 60.0] * 250)
    assert repr(values) == str(values)
    assert str(values) == (
        '<per-class accuracy of 1000 classes: min 10.00, mean 30.00, '
        'max 60.00>'
    )
    restored = pickle.loads(pickle.dumps(values))
    assert type(restored) is list and restored[:2] == [10.0, 20.0]
    assert type(copy.deepcopy(values)) is PerClassAccuracy
    assert json.loads(json.dumps(values))[3] == 60.0


def test_groups_on_real_split_counts(shared_data):
    """The published training counts give the published group sizes."""
    splits = shared_data / 'lt-splits'
    expected = {
        'ImageNet_LT.json': (385, 479, 136),
        'Places_LT.json': (131, 163, 71),
        'iNaturalist18.json': (842, 4076, 3224),
        'CIFAR-100-LT_IMBA100.json': (35, 35, 30),
        'CIFAR-10-LT_IMBA100.json': (8, 2, 0),
    }
    for name, sizes in expected.items():
        counts = json.loads((splits / name).read_text())
        groups = shot_groups(counts)
        assert tuple(int(groups[g].sum()) for g in groups) == sizes, name

    # ImageNet-LT test labels (50 per class), right exactly on many-shot
    # classes: many 100, medium 0, few 0, top-1 = 385 / 1000.
    counts = json.loads((splits / 'ImageNet_LT.json').read_text())
    lines = (splits / 'ImageNet_LT_test.txt').read_text().split('\n')
    gt = np.array([int(line.split()[1]) for line in lines if line.strip()])
    many = shot_groups(counts)['many'].numpy()
    pred = np.where(many[gt], gt, (gt + 1) % 1000)
    metric = LongTailAccuracy(class_counts=counts)
    results = [{'gt': int(g), 'pred': int(p)} for g, p in zip(gt, pred)]
    metrics = metric.compute_metrics(results)
    assert len(gt) == 50_000
    assert metrics['top1'] == pytest.approx(38.5)
    assert (metrics['many'], metrics['medium'], metrics['few']) == (
        pytest.approx(100.0),
        pytest.approx(0.0),
        pytest.approx(0.0),
    )


# ---------------------------------------------------------------- DDP --


def _ddp_worker(rank, world_size, init_file, out_dir, logits, gt, counts):
    torch.set_num_threads(1)
    torch.distributed.init_process_group(
        'gloo',
        init_method=f'file://{init_file}',
        rank=rank,
        world_size=world_size,
    )
    try:
        scores = torch.softmax(logits, dim=1)
        samples = samples_from_scores(scores, gt)
        # mmengine's DefaultSampler: pad to a multiple of the world size
        # with the first indices, then rank r takes indices r, r + W, ...
        n = len(samples)
        total = -(-n // world_size) * world_size
        indices = (list(range(n)) + list(range(n)))[:total]
        mine = [samples[i] for i in indices[rank::world_size]]
        metric = LongTailAccuracy(
            class_counts=counts, posthoc_tau=1.0, rebalance_tau=1.0
        )
        metrics = evaluate(metric, mine, batch_size=3, size=n)
        metrics['lt/per_class'] = list(metrics['lt/per_class'])
        metrics['lt/reliability'] = dict(metrics['lt/reliability'])
        # tau chosen over a grid: per-sample grid labels gathered as well
        chooser = LongTailAccuracy(
            class_counts=counts,
            posthoc_tau='val',
            select_posthoc_tau=True,
            per_class=False,
            reliability=False,
            prefix='sel',
        )
        metrics.update(evaluate(chooser, mine, batch_size=3, size=n))
        torch.save(metrics, os.path.join(out_dir, f'rank{rank}.pt'))
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_ddp_two_gloo_ranks_equal_single_process(tmp_path, hub):
    gen = torch.Generator().manual_seed(1)
    n = 41  # odd: the sampler pads rank 1, collection must drop the pad
    logits = torch.randn(n, 6, generator=gen) * 2
    logits[:, 0] += 2.0  # a head-biased model, so that re-balancing acts
    gt = torch.randint(0, 6, (n,), generator=gen).tolist()
    scores = torch.softmax(logits, dim=1)
    # re-balancing over all 41 rows changes some predictions, and over one
    # rank's share alone it would give other ones
    full = rebalanced_labels(scores, 1.0)
    assert (full != scores.argmax(dim=1)).sum() >= 5
    assert not torch.equal(rebalanced_labels(scores[0::2], 1.0), full[0::2])
    mp.spawn(
        _ddp_worker,
        args=(2, str(tmp_path / 'init'), str(tmp_path), logits, gt, COUNTS),
        nprocs=2,
        join=True,
    )
    single = evaluate(
        LongTailAccuracy(
            class_counts=COUNTS, posthoc_tau=1.0, rebalance_tau=1.0
        ),
        samples_from_scores(scores, gt),
    )
    chooser = LongTailAccuracy(
        class_counts=COUNTS,
        posthoc_tau='val',
        select_posthoc_tau=True,
        per_class=False,
        reliability=False,
        prefix='sel',
    )
    single.update(evaluate(chooser, samples_from_scores(scores, gt)))
    assert 0 < single['sel/posthoc_tau_selected'] <= 2.0
    for rank in (0, 1):
        got = torch.load(tmp_path / f'rank{rank}.pt', weights_only=False)
        assert list(got) == list(single)
        for key, value in single.items():
            if isinstance(value, dict):  # the reliability table
                assert got[key].keys() == value.keys()
                for name, entry in value.items():
                    assert got[key][name] == pytest.approx(entry), name
            else:
                assert got[key] == pytest.approx(value, nan_ok=True), key


# ------------------------------------------------------------- Runner --

NUM_CLASSES = 300


class TinySet(torch.utils.data.Dataset):
    """``per_class`` random 8x8 images of each class, in memory."""

    def __init__(self, num_classes=NUM_CLASSES, per_class=2, seed=0):
        self.num_classes = num_classes
        self.metainfo = {'classes': [f'c{i}' for i in range(num_classes)]}
        gen = torch.Generator().manual_seed(seed)
        self.images = torch.randint(
            0, 256, (per_class * num_classes, 3, 8, 8), generator=gen
        ).to(torch.uint8)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {
            'inputs': self.images[i],
            'data_samples': DataSample().set_gt_label(i % self.num_classes),
        }


class RecordMetrics(Hook):
    def __init__(self):
        self.seen = {}

    def after_val_epoch(self, runner, metrics=None):
        self.seen['val'] = metrics

    def after_test_epoch(self, runner, metrics=None):
        self.seen['test'] = metrics


@pytest.mark.slow
def test_runner_hooks_get_per_class_and_log_stays_short(tmp_path):
    counts = [(i % 7) * 40 + 5 for i in range(NUM_CLASSES)]
    loader = dict(
        dataset=TinySet(),
        sampler=dict(type='DefaultSampler', shuffle=False),
        batch_size=64,
        num_workers=0,
    )
    evaluator = dict(
        type='LongTailAccuracy',
        class_counts=counts,
        posthoc_tau=1.0,
        rebalance_tau=1.0,
    )
    recorder = RecordMetrics()
    runner = Runner(
        model=dict(
            type='ImageClassifier',
            backbone=dict(type='CifarResNet', depth=8),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(
                type='LinearClsHead',
                num_classes=NUM_CLASSES,
                in_channels=64,
            ),
        ),
        work_dir=str(tmp_path),
        val_dataloader=loader,
        val_evaluator=evaluator,
        val_cfg=dict(),
        test_dataloader=loader,
        test_evaluator=evaluator,
        test_cfg=dict(),
        custom_hooks=[recorder],
        default_scope='mmpretrain',
        experiment_name=f'test_metric_{uuid.uuid4().hex}',
    )
    runner.val()
    runner.test()
    for mode in ('val', 'test'):
        metrics = recorder.seen[mode]
        per_class = metrics['lt/per_class']
        assert len(per_class) == NUM_CLASSES
        # every class has 2 samples: the sample mean is the class mean
        assert metrics['lt/top1'] == pytest.approx(np.mean(per_class))
        for key in ('top1_posthoc', 'few_rebalanced'):
            assert isinstance(metrics[f'lt/{key}'], float)
    log = (
        open(os.path.join(runner.log_dir, f'{runner.timestamp}.log'))
        .read()
        .splitlines()
    )
    lines = [line for line in log if 'lt/top1:' in line]
    assert len(lines) == 2  # one val and one test line
    for line in lines:
        assert 'lt/per_class: <per-class accuracy of 300 classes' in line
        assert len(line) < 800, line
    # the message hub (saved in checkpoints) holds a plain list
    state = pickle.loads(pickle.dumps(runner.message_hub.state_dict()))
    stored = state['runtime_info']['val/lt/per_class']
    assert type(stored) is list and len(stored) == NUM_CLASSES
