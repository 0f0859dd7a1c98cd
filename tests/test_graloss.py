"""GradualBalancedLoss: limits, the schedule under a real Runner, errors."""

import math
import uuid

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.hooks import Hook
from mmengine.logging import MessageHub
from mmengine.runner import Runner
from mmpretrain.datasets import BaseDataset
from mmpretrain.models.losses import CrossEntropyLoss
from mmpretrain.registry import DATASETS, HOOKS, MODELS

from glag_mm.core import schedule_value
from glag_mm.models.losses import GradualBalancedLoss

COUNTS = [50, 20, 8, 3, 1]
C = len(COUNTS)


def fresh_hub(iteration=None, max_iters=None) -> MessageHub:
    """A new current MessageHub, optionally at a given training iteration."""
    hub = MessageHub.get_instance(f'test-graloss-{uuid.uuid4().hex}')
    if max_iters is not None:
        hub.update_info('max_iters', max_iters)
        hub.update_info('iter', iteration)
    return hub


def make_batch(n=7, soft=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, C, generator=g) * 3
    if soft:
        target = torch.rand(n, C, generator=g).softmax(dim=-1)
    else:
        target = torch.randint(0, C, (n,), generator=g)
    weight = torch.rand(n, generator=g)
    return logits, target, weight


def value_and_grad(loss_fn, logits, *args, **kwargs):
    z = logits.clone().requires_grad_(True)
    value = loss_fn(z, *args, **kwargs)
    value.sum().backward()
    return value.detach(), z.grad


CALL_OPTIONS = [
    dict(),
    dict(weight=True),
    dict(avg_factor=5.0),
    dict(weight=True, avg_factor=3.0),
    dict(reduction_override='sum'),
    dict(reduction_override='none', weight=True),
]


@pytest.mark.parametrize('soft', [False, True])
@pytest.mark.parametrize('options', CALL_OPTIONS)
def test_tau_zero_equals_mmpretrain_cross_entropy(soft, options):
    fresh_hub()
    logits, target, weight = make_batch(soft=soft)
    kwargs = dict(options)
    if kwargs.pop('weight', False):
        kwargs['weight'] = weight
    ours = GradualBalancedLoss(
        C, schedule='constant', tau_max=0.0, class_counts=COUNTS, loss_weight=2
    )
    ref = CrossEntropyLoss(use_soft=soft, loss_weight=2)
    v1, g1 = value_and_grad(ours, logits, target, **kwargs)
    v2, g2 = value_and_grad(ref, logits, target, **kwargs)
    torch.testing.assert_close(v1, v2, rtol=0, atol=0)
    torch.testing.assert_close(g1, g2, rtol=0, atol=0)


@pytest.mark.parametrize('schedule', ['convex', 'linear', 'concave'])
def test_rising_schedules_start_as_cross_entropy(schedule):
    fresh_hub(iteration=0, max_iters=10)
    logits, target, _ = make_batch()
    loss = GradualBalancedLoss(C, schedule=schedule, class_counts=COUNTS)
    assert loss(logits, target) == CrossEntropyLoss()(logits, target)
    assert loss.current_tau == 0.0


@pytest.mark.parametrize('soft', [False, True])
def test_constant_schedule_equals_the_formula(soft):
    fresh_hub(iteration=3, max_iters=10)
    tau = 0.7
    logits, target, _ = make_batch(soft=soft)
    loss = GradualBalancedLoss(
        C, schedule='constant', tau_max=tau, class_counts=COUNTS
    )
    value, grad = value_and_grad(
        loss, logits, target, reduction_override='none'
    )

    # Direct computation in float64 numpy.
    z = logits.double().numpy()
    prior = np.array(COUNTS, dtype=np.float64) / sum(COUNTS)
    a = z + tau * np.log(prior)
    log_p = a - np.log(np.exp(a).sum(axis=1, keepdims=True))
    q = target.double().numpy() if soft else np.eye(C)[target.numpy()]
    expected = -(q * log_p).sum(axis=1)
    # dL/dz = softmax(z + tau log pi) * sum(q) - q
    expected_grad = np.exp(log_p) * q.sum(axis=1, keepdims=True) - q
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(grad.numpy(), expected_grad, atol=1e-6)


def test_tau_one_equals_balanced_softmax():
    fresh_hub()
    logits, target, _ = make_batch()
    loss = GradualBalancedLoss(
        C, schedule='constant', tau_max=1.0, class_counts=COUNTS
    )
    # Balanced Softmax: softmax over z + log n (not log pi).
    balanced = F.cross_entropy(
        logits + torch.tensor(COUNTS, dtype=torch.float).log(), target
    )
    torch.testing.assert_close(loss(logits, target), balanced)


@pytest.mark.parametrize(
    'schedule, expected',
    [
        ('convex', [0.0, 0.25, 1.0]),
        ('linear', [0.0, 0.5, 1.0]),
        ('concave', [0.0, math.sqrt(0.5), 1.0]),
        ('constant', [1.0, 1.0, 1.0]),
    ],
)
def test_schedule_values_at_0_half_1(schedule, expected):
    logits, target, _ = make_batch()
    loss = GradualBalancedLoss(C, schedule=schedule, class_counts=COUNTS)
    prior = torch.tensor(COUNTS).float() / sum(COUNTS)
    for it, tau in zip(range(3), expected):
        # max_iters = 3: iterations 0, 1, 2 are u = 0, 0.5, 1.
        hub = fresh_hub(iteration=it, max_iters=3)
        value = loss(logits, target)
        assert loss.current_tau == pytest.approx(tau, abs=1e-12)
        assert schedule_value(it / 2, schedule, 1.0, 2.0) == pytest.approx(
            tau, abs=1e-12
        )
        torch.testing.assert_close(
            value, F.cross_entropy(logits + tau * prior.log(), target)
        )
        assert hub.get_scalar('train/tau').current() == pytest.approx(tau)


def test_eval_mode_uses_current_schedule_value_and_does_not_log():
    hub = fresh_hub(iteration=1, max_iters=3)
    logits, target, _ = make_batch()
    loss = GradualBalancedLoss(
        C, schedule='linear', class_counts=COUNTS
    ).eval()
    value = loss(logits, target)
    assert loss.current_tau == 0.5
    assert 'train/tau' not in hub.log_scalars
    assert torch.isfinite(value)


def test_soft_one_hot_equals_hard_labels():
    fresh_hub(iteration=2, max_iters=4)
    logits, target, _ = make_batch()
    loss = GradualBalancedLoss(C, class_counts=COUNTS)
    torch.testing.assert_close(
        loss(logits, target), loss(logits, F.one_hot(target, C).float())
    )


def test_lazy_counts_from_runtime_and_checkpoint_round_trip():
    from glag_mm.runtime import set_train_class_counts

    fresh_hub()
    set_train_class_counts(COUNTS)
    logits, target, _ = make_batch()
    lazy = GradualBalancedLoss(C, schedule='constant')
    assert not lazy.has_class_counts
    value = lazy(logits, target)
    prior = torch.tensor(COUNTS).float() / sum(COUNTS)
    torch.testing.assert_close(lazy.log_prior, prior.log())

    state = lazy.state_dict()
    assert 'log_prior' in state
    fresh_hub()  # no counts published in this hub
    restored = GradualBalancedLoss(C, schedule='constant')
    restored.load_state_dict(state)
    torch.testing.assert_close(restored(logits, target), value)


def test_errors_say_what_to_change():
    fresh_hub()
    with pytest.raises(ValueError, match='unknown schedule'):
        GradualBalancedLoss(C, schedule='cosine')
    with pytest.raises(ValueError, match='tau_max must be'):
        GradualBalancedLoss(C, tau_max=-0.5)
    with pytest.raises(ValueError, match='zero training images'):
        GradualBalancedLoss(C, class_counts=[5, 0, 2, 1, 1])
    logits, target, _ = make_batch()
    with pytest.raises(ValueError, match=r'3 class counts given \(class_c'):
        GradualBalancedLoss(C, class_counts=[5, 3, 2])
    with pytest.raises(
        ValueError,
        match=r"GradualBalancedLoss: num_classes \(the head's\) must be an "
        'integer >= 1, got 0',
    ):
        GradualBalancedLoss(0)
    with pytest.raises(ValueError, match=r'logits of shape \(7, 5\) but '):
        GradualBalancedLoss(4, class_counts=[1, 2, 3, 4])(logits, target)
    with pytest.raises(ValueError, match='ClassCountsHook'):
        GradualBalancedLoss(C)(logits, target)

    from glag_mm.runtime import set_train_class_counts

    set_train_class_counts([4, 3, 2])
    with pytest.raises(ValueError, match='counted from the training dataset'):
        GradualBalancedLoss(C)(logits, target)
    set_train_class_counts([4, 3, 2, 0, 1])
    with pytest.raises(ValueError, match=r'class\(es\) \[3\]'):
        GradualBalancedLoss(C)(logits, target)
    with pytest.raises(ValueError, match='reduction_override'):
        GradualBalancedLoss(C, class_counts=COUNTS)(
            logits, target, reduction_override='max'
        )


# ---------------------------------------------------------------------------
# Under a real mmengine Runner: tau rises from 0 to tau_max.


@MODELS.register_module(name='GraLossTestTinyNet', force=True)
class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x):
        return (F.relu(self.conv(x)),)


@DATASETS.register_module(name='GraLossTestTinyLT', force=True)
class TinyLT(BaseDataset):
    METAINFO = dict(classes=('a', 'b', 'c', 'd'))
    COUNTS = (8, 4, 2, 2)

    def __init__(self, **kwargs):
        super().__init__(ann_file='', **kwargs)

    def load_data_list(self):
        rng = np.random.default_rng(0)
        return [
            dict(img=rng.random((6, 6, 3), dtype=np.float32), gt_label=c)
            for c, n in enumerate(self.COUNTS)
            for _ in range(n)
        ]


@DATASETS.register_module(name='GraLossTestLabelTooLarge', force=True)
class LabelTooLarge(TinyLT):
    """Labels 0..4 for a 4-class head: sample 14 is the first label 4."""

    COUNTS = (8, 4, 2, 0, 2)


@HOOKS.register_module(name='GraLossTestTauRecorder', force=True)
class TauRecorder(Hook):
    taus = []

    def after_train_iter(
        self, runner, batch_idx, data_batch=None, outputs=None
    ):
        TauRecorder.taus.append(
            (runner.iter, runner.model.head.loss_module.current_tau)
        )


def tiny_runner(tmp_path, loss, dataset='GraLossTestTinyLT') -> Runner:
    """A 7-iteration Runner on a tiny 4-class dataset."""
    return Runner(
        model=dict(
            type='ImageClassifier',
            backbone=dict(type='GraLossTestTinyNet'),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(
                type='LinearClsHead', num_classes=4, in_channels=8, loss=loss
            ),
        ),
        work_dir=str(tmp_path),
        train_dataloader=dict(
            dataset=dict(type=dataset, pipeline=[dict(type='PackInputs')]),
            sampler=dict(type='InfiniteSampler', shuffle=True),
            batch_size=4,
            num_workers=0,
        ),
        train_cfg=dict(by_epoch=False, max_iters=7),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        custom_hooks=[
            dict(type='ClassCountsHook'),
            dict(type='GraLossTestTauRecorder'),
        ],
        default_hooks=dict(
            logger=dict(type='LoggerHook', interval=1), checkpoint=None
        ),
        default_scope='mmpretrain',
        experiment_name=f'graloss-runner-{uuid.uuid4().hex}',
    )


@pytest.mark.slow
def test_tau_under_a_real_runner(tmp_path):
    TauRecorder.taus = []
    max_iters, tau_max = 7, 1.5
    loss = dict(
        type='GradualBalancedLoss',
        num_classes=4,
        schedule='convex',
        tau_max=tau_max,
    )
    runner = tiny_runner(tmp_path, loss)
    runner.train()

    iters = [i for i, _ in TauRecorder.taus]
    taus = [t for _, t in TauRecorder.taus]
    assert iters == list(range(max_iters))  # the iteration just run
    assert taus[0] == 0.0
    assert taus[-1] == tau_max
    assert all(b >= a for a, b in zip(taus, taus[1:]))
    for k, tau in enumerate(taus):
        expected = schedule_value(k / (max_iters - 1), 'convex', tau_max, 2)
        assert tau == pytest.approx(expected, abs=1e-12)

    # The prior came from the training set through ClassCountsHook.
    loss = runner.model.head.loss_module
    prior = torch.tensor(TinyLT.COUNTS).float() / sum(TinyLT.COUNTS)
    torch.testing.assert_close(loss.log_prior, prior.log())
    # tau is in the training log.
    assert runner.message_hub.get_scalar('train/tau').current() == tau_max
    log_text = ''.join(
        p.read_text() for p in tmp_path.rglob('*.log') if p.is_file()
    )
    assert 'tau: 1.5000' in log_text


def test_init_class_counts_sizes_the_buffer_before_an_ema_copy():
    # An EMA model is a deep copy taken in before_run; its buffers are then
    # copied from the source model every step, so the prior must be sized
    # before the copy (ClassCountsHook's before_run runs first).
    from mmengine.model import ExponentialMovingAverage

    fresh_hub()
    head = nn.Sequential(nn.Linear(3, C), GradualBalancedLoss(C))
    head[1].init_class_counts(COUNTS)
    ema = ExponentialMovingAverage(head, momentum=0.5)
    logits, target, _ = make_batch()
    head[1](logits, target)
    ema.update_parameters(head)
    torch.testing.assert_close(ema.module[1].log_prior, head[1].log_prior)
    head[1].init_class_counts([1] * C)  # known counts are kept
    torch.testing.assert_close(ema.module[1].log_prior, head[1].log_prior)


@pytest.mark.parametrize(
    'loss',
    [
        dict(type='GradualBalancedLoss', num_classes=4),
        dict(type='CrossEntropyLoss'),
    ],
    ids=['GradualBalancedLoss', 'CrossEntropyLoss'],
)
def test_label_out_of_range_is_reported_before_training(tmp_path, loss):
    """A label equal to num_classes names the dataset and the first sample
    with it before the first iteration, under GraLoss and under plain CE."""
    TauRecorder.taus = []
    runner = tiny_runner(tmp_path, loss, dataset='GraLossTestLabelTooLarge')
    with pytest.raises(ValueError) as error:
        runner.train()
    message = str(error.value)
    assert message.startswith(
        'LabelTooLarge: sample 14 has label 4, outside [0, 4)'
    )
    assert '(2 such sample(s))' in message
    assert 'class counts given' not in message
    assert TauRecorder.taus == []  # no iteration ran
    assert not list(tmp_path.rglob('*.pth'))
