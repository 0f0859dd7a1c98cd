"""AFGHead and LWSHead on synthetic features (no Runner)."""

import pytest
import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub
from mmpretrain.models.heads import LinearClsHead
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from glag_mm.core import (
    generate_features,
    generation_plan,
    seeded_generators,
)
from glag_mm.engine.afg_statistics import build_statistics
from glag_mm.models.heads import AFGHead, LWSHead

C, D = 4, 6
COUNTS = [40, 20, 8, 3]


def _features(counts=COUNTS, seed=0):
    g = torch.Generator().manual_seed(seed)
    feats, labels = [], []
    for c, n in enumerate(counts):
        feats.append(torch.rand(n, D, generator=g) + 0.5 * c)
        labels += [c] * n
    return torch.cat(feats), torch.tensor(labels)


def _head(counts=COUNTS, **kwargs):
    cfg = dict(num_classes=len(counts), in_channels=D, tail_threshold=10)
    cfg.update(num_donors=2)
    cfg.update(kwargs)
    head = AFGHead(**cfg)
    feats, labels = _features(counts)
    batches = [(feats, labels, torch.arange(len(labels)))]
    head.set_statistics(build_statistics(head, batches, all_gather=False))
    return head


def _samples(labels):
    return [DataSample().set_gt_label(int(y)) for y in labels]


def _set_iter(it):
    MessageHub.get_current_instance().update_info('iter', it)


def test_same_tukey_transform_at_train_and_test():
    head = _head()
    feats, _ = _features()
    expected = F.linear(feats.sqrt(), head.fc.weight, head.fc.bias)
    head.train()
    torch.testing.assert_close(head((feats,)), expected)
    head.eval()
    pred = head.predict((feats,))
    torch.testing.assert_close(
        torch.stack([p.pred_score for p in pred]), expected.softmax(1)
    )


def test_lambda_one_is_a_plain_linear_head():
    head = _head(tukey_lambda=1)
    plain = LinearClsHead(num_classes=C, in_channels=D)
    plain.load_state_dict(head.fc.state_dict(prefix='fc.'), strict=False)
    feats, _ = _features()
    torch.testing.assert_close(head((feats,)), plain((feats,)))


def test_statistics_are_class_means_of_transformed_features():
    head = _head()
    feats, labels = _features()
    assert head.class_counts == COUNTS
    for c in range(C):
        torch.testing.assert_close(
            head.statistics.means[c],
            feats[labels == c].sqrt().mean(0),
            atol=2e-3,
            rtol=0,
        )


def test_balance_plan_tops_every_class_up_in_expectation():
    head = _head()
    g = torch.Generator().manual_seed(0)
    batch, trials = 16, 4000
    total = torch.zeros(C)
    for _ in range(trials):
        classes, _ = head.plan(torch.zeros(batch, dtype=torch.long), g)
        total += torch.bincount(classes, minlength=C)
    n = torch.tensor(COUNTS, dtype=torch.float)
    expected = batch * (n.max() - n) / n.sum()  # B (n_max - n_c) / N
    torch.testing.assert_close(total / trials, expected, atol=0.05, rtol=0)
    # real (B n_c / N) plus generated is uniform over classes
    torch.testing.assert_close(
        expected + batch * n / n.sum(), torch.full((C,), batch * 40 / 71)
    )


def test_ratio_plan_repeats_each_real_label():
    head = _head(generation='ratio', generation_ratio=2.0)
    labels = torch.tensor([3, 0, 2, 2])
    assert head.plan(labels)[0].tolist() == [0, 0, 2, 2, 2, 2, 3, 3]


def test_head_draws_exactly_what_the_generator_draws():
    # one generation path: the head's draw for a fixed seed and iteration is
    # the core generator's, bit for bit, and its loss is CE over real + those
    head = _head(init_confidence=0.4, alpha=0.1, seed=5)
    head.train()
    feats, labels = _features()
    pick = torch.arange(0, len(labels), 3)
    x, y = feats[pick], labels[pick]
    _set_iter(11)
    loss = head.loss((x,), _samples(y))['loss']
    host, dev = seeded_generators(5, 11, 0)
    classes = generation_plan(
        torch.tensor(COUNTS), torch.empty(len(y)), generator=host
    )
    fake, fake_labels = generate_features(
        head.statistics, torch.full((C,), 0.4), classes, 0.1, (host, dev)
    )
    assert set(classes.tolist()) >= {2, 3}  # tail classes are generated
    logits = head.fc(torch.cat([x.sqrt(), fake]))
    expected = F.cross_entropy(logits, torch.cat([y, fake_labels]))
    # equal up to the reduction's rounding; another draw moves it by far more
    torch.testing.assert_close(loss, expected, rtol=0, atol=1e-6)
    _set_iter(12)
    other = head.loss((x,), _samples(y))['loss'].detach()
    assert abs(float(other - loss.detach())) > 1e-4


def test_loss_is_cross_entropy_over_real_and_generated():
    head = _head()
    head.train()
    feats, labels = _features()
    pick = torch.arange(0, len(labels), 5)
    x, y = feats[pick], labels[pick]
    _set_iter(7)
    loss = head.loss((x,), _samples(y))['loss']
    gens = head.generators(x.device)
    classes, _ = head.plan(y, gens[0])
    fake, fake_labels = head.generate(classes, gens)
    logits = head.fc(torch.cat([x.sqrt(), fake]))
    expected = F.cross_entropy(logits, torch.cat([y, fake_labels]))
    assert classes.numel() > 0
    torch.testing.assert_close(loss, expected)
    # the same iteration draws the same features; another one does not
    assert torch.equal(head.loss((x,), _samples(y))['loss'], loss)
    _set_iter(8)
    assert not torch.equal(head.loss((x,), _samples(y))['loss'], loss)
    # soft targets (mixup-style gt_score) get one-hot generated targets
    soft = [
        s.set_gt_score(F.one_hot(s.gt_label, C).float()[0])
        for s in _samples(y)
    ]
    _set_iter(7)
    soft_loss = head.loss((x,), soft)['loss']
    torch.testing.assert_close(soft_loss, expected)


def test_capped_generation_is_weighted_to_the_uncapped_loss():
    head = _head(max_generated=3)
    head.train()
    feats, labels = _features()
    x, y = feats[:8], labels[:8]
    _set_iter(4)
    loss = head.loss((x,), _samples(y))['loss']
    gens = head.generators(x.device)
    classes, planned = head.plan(y, gens[0])
    assert classes.numel() == 3 and planned > 3
    fake, fake_labels = head.generate(classes, gens)
    per = F.cross_entropy(
        head.fc(torch.cat([x.sqrt(), fake])),
        torch.cat([y, fake_labels]),
        reduction='none',
    )
    # (sum_real l + (G / g) sum_kept l) / (B + G)
    expected = (per[:8].sum() + planned / 3 * per[8:].sum()) / (8 + planned)
    torch.testing.assert_close(loss, expected)


def test_state_dict_holds_confidence_not_statistics():
    head = _head()
    head.update_confidence(torch.rand(C))
    head.update_confidence(torch.rand(C))
    state = head.state_dict()
    assert sorted(state) == [
        'confidence',
        'fc.bias',
        'fc.weight',
        'last_update_iter',
        'num_confidence_updates',
        'prev_class_acc',
        'signed_features',
    ]
    fresh = AFGHead(
        num_classes=C, in_channels=D, tail_threshold=10, num_donors=2
    )
    fresh.load_state_dict(state)
    assert fresh.statistics is None
    assert torch.equal(fresh.confidence, head.confidence)
    feats, _ = _features()
    fresh.eval()
    head.eval()
    assert torch.equal(fresh((feats,)), head((feats,)))  # predicts alone
    fresh.set_statistics(head.statistics)
    fresh.train()
    head.train()
    _set_iter(3)
    _, labels = _features()
    a = head.loss((feats[:10],), _samples(labels[:10]))['loss']
    b = fresh.loss((feats[:10],), _samples(labels[:10]))['loss']
    assert torch.equal(a, b)


def test_confidence_update_rule():
    head = _head(confidence_step=0.3, init_confidence=0.6)
    head.update_confidence(torch.tensor([0.5, 0.5, 0.5, 0.5]), iteration=10)
    assert torch.equal(head.confidence, torch.full((C,), 0.6))  # recorded
    assert int(head.last_update_iter) == 10
    nan = float('nan')
    head.update_confidence(torch.tensor([0.9, 0.1, 0.9, nan]))
    # classes 0, 1 are head classes (>= 10 images): never moved; class 2
    # improved: + 0.3; class 3 had no validation sample: unchanged
    torch.testing.assert_close(
        head.confidence, torch.tensor([0.6, 0.6, 0.9, 0.6])
    )
    head.update_confidence(torch.tensor([0.9, 0.1, 1.0, 0.2]))
    # class 2 is clipped at s_max = 1; class 3 fell (0.2 < 0.5): - 0.3
    torch.testing.assert_close(
        head.confidence, torch.tensor([0.6, 0.6, 1.0, 0.3])
    )
    assert torch.equal(head.prev_class_acc, torch.tensor([0.9, 0.1, 1.0, 0.2]))


def test_confidence_against_the_stage_one_reference():
    head = _head(confidence_step=0.1, confidence_reference='stage_one')
    with pytest.raises(
        RuntimeError, match='stage-one accuracies, which AFGHook sets'
    ):
        head.update_confidence(torch.full((C,), 0.5))
    head.reference_acc.copy_(torch.tensor([0.5, 0.5, 0.5, 0.5]))
    # already the first update moves: class 2 is above its stage-one
    # accuracy and rises, class 3 below and falls; head classes never move
    head.update_confidence(torch.tensor([0.9, 0.1, 0.7, 0.3]))
    torch.testing.assert_close(
        head.confidence, torch.tensor([0.6, 0.6, 0.7, 0.5])
    )
    # class 3 improved on the last validation (0.3 -> 0.4) but is still
    # below the reference, so it falls again ('previous' would raise it)
    head.update_confidence(torch.tensor([0.9, 0.1, 0.6, 0.4]))
    torch.testing.assert_close(
        head.confidence, torch.tensor([0.6, 0.6, 0.8, 0.4])
    )
    assert 'reference_acc' in head.state_dict()
    assert 'reference_acc' not in _head().state_dict()


def test_clear_errors():
    with pytest.raises(RuntimeError, match='AFGHook'):
        AFGHead(num_classes=C, in_channels=D).generate(torch.tensor([0]), 0)
    head = AFGHead(num_classes=C, in_channels=D)
    with pytest.raises(ValueError, match='non-negative'):
        # a post-ReLU first batch, then negative features
        build_statistics(
            head,
            [
                (torch.ones(2, D), torch.tensor([0, 1]), torch.arange(2)),
                (-torch.ones(2, D), torch.tensor([0, 1]), torch.arange(2, 4)),
            ],
            all_gather=False,
        )
    # a one-image tail class whose only larger class cannot make k = 3
    with pytest.raises(ValueError, match='donors'):
        _head(counts=[5, 1], num_donors=3)
    # a one-image class that is not a tail class has no covariance
    head = _head(counts=[5, 1], tail_threshold=1)
    with pytest.raises(ValueError, match='tail_threshold above 1'):
        head.generate(torch.tensor([1]), head.generators('cpu'))
    for bad in (
        dict(generation='oversample'),
        dict(donor_weighting='nearest'),
        dict(init_confidence=1.5),
        dict(tukey_lambda='half'),
        dict(tail_threshold=-3),
        dict(confidence_reference='best'),
    ):
        with pytest.raises((ValueError, TypeError)):
            AFGHead(num_classes=C, in_channels=D, **bad)


def test_registered_and_drop_in():
    head = MODELS.build(dict(type='AFGHead', num_classes=3, in_channels=5))
    assert isinstance(head, LinearClsHead)
    assert head.tukey_lambda == 0.5 and head.tail_threshold == 100
    assert head.num_donors == 3 and head.alpha == 0.0
    assert torch.all(head.confidence == 0.6)


def test_lws_head_scales_frozen_classifier():
    head = MODELS.build(dict(type='LWSHead', num_classes=C, in_channels=D))
    assert isinstance(head, LWSHead)
    trainable = [n for n, p in head.named_parameters() if p.requires_grad]
    assert trainable == ['scales']
    with torch.no_grad():
        head.scales.copy_(torch.tensor([1.0, 2.0, 0.5, 3.0]))
    feats, labels = _features()
    expected = head.fc(feats) * head.scales
    torch.testing.assert_close(head((feats,)), expected)
    loss = head.loss((feats,), _samples(labels))['loss']
    torch.testing.assert_close(loss, F.cross_entropy(expected, labels))
    loss.backward()
    assert head.scales.grad is not None and head.fc.weight.grad is None


def test_confidence_update_on_a_smoothed_accuracy():
    head = _head(confidence_step=0.1, init_confidence=0.6,
                 confidence_smoothing=0.5)  # fmt: skip
    head.update_confidence(torch.tensor([0.5, 0.5, 0.4, 0.4]))  # recorded
    assert head.prev_class_acc.tolist() == pytest.approx([0.5, 0.5, 0.4, 0.4])
    # a~ = 0.5 a~_prev + 0.5 acc: class 2 rises (0.6 > 0.4), class 3 falls
    head.update_confidence(torch.tensor([0.9, 0.1, 0.6, 0.2]))
    want = [0.7, 0.3, 0.5, 0.3]
    assert head.prev_class_acc.tolist() == pytest.approx(want)
    torch.testing.assert_close(
        head.confidence, torch.tensor([0.6, 0.6, 0.7, 0.5])
    )
    # 0.55 is below class 2's last accuracy (0.6), where the raw rule
    # would step down, but above its average (0.5): the smoothed rule
    # steps up (0.7 -> 0.8), and the average becomes 0.525
    head.update_confidence(torch.tensor([0.9, 0.1, 0.55, 0.2]))
    assert head.prev_class_acc[2].item() == pytest.approx(0.525)
    assert head.confidence[2].item() == pytest.approx(0.8)
    with pytest.raises(ValueError, match='below 1'):
        _head(confidence_smoothing=1.0)


def test_signed_features_use_lambda_one():
    """Post-ReLU features: x^0.5 (the paper); signed ones (a LayerNorm-ended
    trunk), found by the statistics pass: the features themselves."""
    from glag_mm.engine.afg_statistics import build_statistics

    torch.manual_seed(0)
    labels = torch.arange(C).repeat_interleave(12)
    idx = torch.arange(labels.numel())
    relu = torch.rand(labels.numel(), D)
    head = _head()
    head.set_statistics(build_statistics(head, [(relu, labels, idx)]))
    assert not bool(head.signed_features)
    assert torch.equal(head.transform(relu), relu.sqrt())
    signed = relu - 0.5
    head = _head()
    head.set_statistics(build_statistics(head, [(signed, labels, idx)]))
    assert bool(head.signed_features)
    assert torch.equal(head.transform(signed, check=True), signed)
    means = torch.stack([signed[labels == c].mean(0) for c in range(C)])
    torch.testing.assert_close(head.statistics.means, means)
    # the choice is part of the head's state: a checkpoint restores it
    fresh = _head()
    fresh.load_state_dict(head.state_dict())
    assert torch.equal(fresh.transform(signed), signed)
    # a fractional power on signed features is still refused where the
    # pass did not see them (e.g. the first batch was all non-negative)
    with pytest.raises(ValueError, match='non-negative'):
        _head().transform(signed, check=True)
