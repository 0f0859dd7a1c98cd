"""tau-normalisation (Kang et al. 2020) and temperature scaling chosen on
validation, kept in checkpoints and applied to test as post-hoc tau is;
the noise rule of a validation choice."""

import pytest
import torch
from mmengine.evaluator import Evaluator
from mmpretrain.models.heads import LinearClsHead
from test_posthoc_tau import (  # noqa: F401  (hub: a fresh MessageHub)
    COUNTS,
    GRID,
    VAL,
    _runner,
    evaluate,
    hub,
    samples,
    split,
    tiny_set,
)

from glag_mm.engine import PosthocTauHook
from glag_mm.evaluation import POSTHOC_TAU_KEY, LongTailAccuracy
from glag_mm.evaluation.bootstrap import paired_bootstrap
from glag_mm.evaluation.posthoc_tau import (
    TAU_NORM_KEY,
    TEMPERATURE_KEY,
    get_selected,
    set_selected,
)
from glag_mm.evaluation.tau_norm import (
    tau_norm_labels_over_grid,
    tau_norm_logits,
)
from glag_mm.models.heads import TauNormHead
from glag_mm.safe_load import load_checkpoint_file


def tiny_head(seed=0, classes=3, dim=5):
    """A TauNormHead with head-class weights far longer than the tail's."""
    head = TauNormHead(num_classes=classes, in_channels=dim)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        weight = torch.randn(classes, dim, generator=gen)
        scale = torch.tensor([4.0, 1.5, 0.5][:classes]).view(-1, 1)
        head.fc.weight.copy_(weight / weight.norm(dim=1, keepdim=True) * scale)
        head.fc.bias.copy_(torch.randn(classes, generator=gen) * 0.1)
    return head


def test_tau_norm_against_a_direct_computation():
    head = tiny_head()
    feats = torch.randn(20, 5, generator=torch.Generator().manual_seed(1))
    weight, bias = head.fc.weight.detach(), head.fc.bias.detach()
    norms = head.weight_norms()
    assert norms.tolist() == pytest.approx([4.0, 1.5, 0.5], rel=1e-5)
    assert torch.equal(head.classifier_bias(), bias)
    logits = head((feats,)).detach()
    # tau = 0: the head itself
    assert torch.allclose(tau_norm_logits(logits, bias, norms, 0.0), logits)
    # tau = 1: the classifier with unit-norm weights (bias kept)
    unit = feats @ (weight / weight.norm(dim=1, keepdim=True)).T + bias
    got = tau_norm_logits(logits, bias, norms, 1.0)
    assert torch.allclose(got, unit, atol=1e-5)
    # tau = 0.5: w_c / sqrt(||w_c||)
    half = feats @ (weight / weight.norm(dim=1, keepdim=True).sqrt()).T + bias
    got = tau_norm_logits(logits, bias, norms, 0.5)
    assert torch.allclose(got, half, atol=1e-5)
    labels = tau_norm_labels_over_grid(logits, bias, norms, [0.0, 1.0])
    assert torch.equal(labels[0], logits.argmax(dim=1))
    assert torch.equal(labels[1], unit.argmax(dim=1))
    with pytest.raises(ValueError, match='positive norm'):
        tau_norm_logits(logits, bias, torch.tensor([1.0, 0.0, 1.0]), 1.0)
    # predictions carry the logits; a LinearClsHead's weights load as-is
    predictions = head.predict((feats,))
    assert torch.equal(predictions[3].pred_logits, logits[3])
    assert torch.equal(
        predictions[3].pred_score, torch.softmax(logits[3], dim=0)
    )
    plain = LinearClsHead(num_classes=3, in_channels=5)
    plain.load_state_dict(head.state_dict())


def tau_norm_case(head, seed, size=60):
    """Features near each class's direction: the tail class's short
    weight loses it at tau = 0 and wins it back as tau grows."""
    gen = torch.Generator().manual_seed(seed)
    weight = head.fc.weight.detach()
    gt = torch.arange(size) % 3
    unit = weight / weight.norm(dim=1, keepdim=True)
    feats = unit[gt] * 2 + torch.randn(size, 5, generator=gen) * 0.9
    logits = head((feats,)).detach()
    return feats, logits, gt


def tau_norm_samples(head, feats, gt):
    return [s.set_gt_label(int(y)) for s, y in zip(head.predict((feats,)), gt)]


def test_tau_norm_chosen_on_validation_maximises_its_accuracy():
    head = tiny_head()
    feats, logits, gt = tau_norm_case(head, seed=2)
    norms, bias = head.weight_norms(), head.classifier_bias()
    direct = []  # class-mean accuracy at each tau, by plain loops
    for tau in GRID:
        w = head.fc.weight.detach() / norms.view(-1, 1) ** tau
        pred = (feats @ w.T + bias).argmax(dim=1).tolist()
        per_class = []
        for c in range(3):
            rows = [i for i in range(len(gt)) if gt[i] == c]
            per_class.append(sum(pred[i] == c for i in rows) / len(rows))
        direct.append(100 * sum(per_class) / 3)
    best = GRID[direct.index(max(direct))]  # ties: the smallest tau
    assert best > 0 and max(direct) > direct[0] + 10  # tau matters here
    metric = LongTailAccuracy(
        class_counts=[500, 50, 5], tau_norm='val', select_posthoc_tau=True
    )
    metric.set_classifier(norms, bias)
    evaluator = Evaluator(metric)
    evaluator.process(tau_norm_samples(head, feats, gt))
    metrics = evaluator.evaluate(len(gt))
    assert metrics['lt/tau_norm_selected'] == best
    assert metrics['lt/class_mean_tau_norm'] == pytest.approx(max(direct))
    assert metrics['lt/class_mean'] == pytest.approx(direct[0])
    # on test the chosen tau is applied, not chosen again
    set_selected('tau_norm', dict(tau=best, iter=3))
    feats, logits, gt = tau_norm_case(head, seed=3)
    applier = LongTailAccuracy(
        class_counts=[500, 50, 5], tau_norm='val', select_posthoc_tau=False
    )
    applier.set_classifier(norms, bias)
    evaluator = Evaluator(applier)
    evaluator.process(tau_norm_samples(head, feats, gt))
    metrics = evaluator.evaluate(len(gt))
    want = tau_norm_logits(logits, bias, norms, best).argmax(dim=1)
    assert metrics['lt/tau_norm_selected'] == best
    assert metrics['lt/top1_tau_norm'] == pytest.approx(
        (want == gt).double().mean().item() * 100
    )
    # without the head's norms (no TauNormHead / hook): a clear error
    with pytest.raises(ValueError, match='TauNormHead'):
        Evaluator(LongTailAccuracy(tau_norm=0.5)).process(samples(*VAL))


def test_hook_gives_the_norms_and_carries_every_choice():
    head = tiny_head()
    metric = LongTailAccuracy(tau_norm='val', temperature='val')

    class Loop:
        evaluator = Evaluator(metric)

    class Model:
        pass

    class FakeRunner:
        val_loop = Loop()
        test_loop = None
        model = Model()
        logger = None  # no log line on these paths

    FakeRunner.model.head = head
    PosthocTauHook().before_val_epoch(FakeRunner())
    assert metric.selects_tau() is True
    norms, bias = metric._classifier
    assert torch.equal(norms, head.weight_norms())
    assert torch.equal(bias, head.classifier_bias())
    FakeRunner.model.head = LinearClsHead(num_classes=3, in_channels=5)
    with pytest.raises(ValueError, match='weight_norms'):
        PosthocTauHook().before_val_epoch(FakeRunner())
    # every choice goes into the checkpoint and comes back with it
    set_selected('tau_norm', dict(tau=0.6, iter=4, epoch=1))
    set_selected('temperature', dict(temperature=1.5, iter=4, epoch=1))
    checkpoint = dict(meta=dict(iter=4, epoch=1))
    hook = PosthocTauHook()
    hook.before_save_checkpoint(FakeRunner(), checkpoint)
    assert checkpoint['meta'][TAU_NORM_KEY] == dict(tau=0.6, iter=4, epoch=1)
    assert checkpoint['meta'][TEMPERATURE_KEY]['temperature'] == 1.5
    assert POSTHOC_TAU_KEY not in checkpoint['meta']  # none was chosen
    set_selected('tau_norm', None)
    set_selected('temperature', None)

    class Logger:
        lines = []

        def info(self, line):
            self.lines.append(line)

    FakeRunner.logger = Logger()
    hook.after_load_checkpoint(FakeRunner(), checkpoint)
    assert get_selected('tau_norm') == dict(tau=0.6, iter=4, epoch=1)
    assert get_selected('temperature')['temperature'] == 1.5
    assert 'tau-norm tau 0.6' in ' '.join(Logger.lines)


@pytest.mark.slow
def test_tau_norm_and_temperature_travel_from_validation_to_test(tmp_path):
    options = dict(tau_norm='val', temperature='val')
    train = _runner(
        tmp_path / 'train',
        posthoc_tau=None,
        head='TauNormHead',
        metric=options,
        train_dataloader=dict(
            dataset=tiny_set(0),
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=8,
            num_workers=0,
        ),
        train_cfg=dict(type='ValidateBeforeSaveLoop', max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.5, momentum=0.9)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
    )
    train.train()
    chosen = dict(
        tau_norm=get_selected('tau_norm')['tau'],
        temperature=get_selected('temperature')['temperature'],
    )
    meta = load_checkpoint_file(str(tmp_path / 'train' / 'epoch_1.pth'))
    meta = meta['meta']
    assert meta[TAU_NORM_KEY] == dict(tau=chosen['tau_norm'], iter=3, epoch=1)
    assert meta[TEMPERATURE_KEY]['temperature'] == chosen['temperature']
    assert POSTHOC_TAU_KEY not in meta
    set_selected('tau_norm', None)
    set_selected('temperature', None)
    checkpoint = str(tmp_path / 'train' / 'epoch_1.pth')
    test = _runner(
        tmp_path / 'test',
        posthoc_tau=None,
        head='TauNormHead',
        metric=options,
        load_from=checkpoint,
    )
    metrics = test.test()
    assert metrics['lt/tau_norm_selected'] == chosen['tau_norm']
    assert metrics['lt/temperature_selected'] == chosen['temperature']
    # the same numbers as the chosen values given as numbers
    fixed = _runner(
        tmp_path / 'fixed',
        posthoc_tau=None,
        head='TauNormHead',
        metric=chosen,
        load_from=checkpoint,
    ).test()
    for key in ('top1_tau_norm', 'class_mean_tau_norm', 'ece_temperature'):
        assert metrics[f'lt/{key}'] == pytest.approx(fixed[f'lt/{key}'])


def test_a_tau_within_the_noise_keeps_the_grids_first_value():
    # one tail image of 20 turns right past tau 0.3; nothing else moves
    # below tau 2: the best tau gains 5 class-mean points on one image
    data = split([0.3] + [5.0] * 9, [5.0] * 10)
    plain = LongTailAccuracy(
        class_counts=COUNTS, posthoc_tau='val', select_posthoc_tau=True
    )
    assert evaluate(plain, data)['lt/posthoc_tau_selected'] == 0.4
    noisy = LongTailAccuracy(
        class_counts=COUNTS,
        posthoc_tau='val',
        select_posthoc_tau=True,
        noise_resamples=400,
        noise_seed=3,
    )
    metrics = evaluate(noisy, data)
    assert metrics['lt/posthoc_tau_selected'] == 0.0
    assert metrics['lt/posthoc_tau_best_by_score'] == 0.4
    assert metrics['lt/posthoc_tau_beyond_noise'] == 0.0
    assert metrics['lt/posthoc_tau_gain'] == pytest.approx(5.0)
    assert metrics['lt/posthoc_tau_gain_low'] == 0.0
    assert metrics['lt/top1_posthoc'] == metrics['lt/top1']  # tau 0


def test_a_tau_norm_beyond_the_noise_is_chosen():
    head = tiny_head()
    feats, logits, gt = tau_norm_case(head, seed=2)
    norms, bias = head.weight_norms(), head.classifier_bias()
    labels = tau_norm_labels_over_grid(logits, bias, norms, GRID)
    metric = LongTailAccuracy(
        class_counts=[500, 50, 5],
        tau_norm='val',
        select_posthoc_tau=True,
        noise_resamples=300,
    )
    metric.set_classifier(norms, bias)
    evaluator = Evaluator(metric)
    evaluator.process(tau_norm_samples(head, feats, gt))
    metrics = evaluator.evaluate(len(gt))
    best = metrics['lt/tau_norm_best_by_score']
    want = paired_bootstrap(
        gt.numpy(), labels[GRID.index(best)].numpy(), labels[0].numpy(),
        'class_mean', 300, 0,
    )  # fmt: skip
    assert metrics['lt/tau_norm_gain'] == pytest.approx(want['difference'])
    assert [
        metrics['lt/tau_norm_gain_low'], metrics['lt/tau_norm_gain_high']
    ] == pytest.approx(want['interval'])  # fmt: skip
    assert want['interval'][0] > 0  # a gain far beyond one image here
    assert metrics['lt/tau_norm_beyond_noise'] == 1.0
    assert metrics['lt/tau_norm_selected'] == best > 0
