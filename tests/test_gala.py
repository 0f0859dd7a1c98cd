"""GALALoss: the CE limit, hand-computed statistics, EMA, DDP, state."""

import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from mmpretrain.models.losses import CrossEntropyLoss

from glag_mm.models.losses import GALALoss

C = 5


def make_steps(n_steps=3, n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        (
            torch.randn(n, C, generator=g) * 2,
            torch.randint(0, C, (n,), generator=g),
        )
        for _ in range(n_steps)
    ]


def reference(steps, lambda1, lambda2, eps, phi_mode, momentum=None):
    """Plain-loop GALA: per-step mean losses and the final (theta, phi)."""
    theta, phi = np.zeros(C), np.zeros(C)
    losses = []
    for logits, labels in steps:
        z, y = logits.double().numpy(), labels.numpy()
        d_theta, d_phi = np.zeros(C), np.zeros(C)
        step_losses = []
        for i in range(len(y)):
            k = y[i]
            a = np.empty(C)
            for j in range(C):
                a[j] = z[i, j]
                if j != k:
                    a[j] += lambda1 * np.log(theta[j] + eps)
                    a[j] -= lambda2 * np.log(phi[k] + eps)
            p = np.exp(a - a.max())
            p /= p.sum()
            step_losses.append(-np.log(p[k]))
            d_theta[k] += 1 - p[k]
            for j in range(C):
                if j == k:
                    continue
                if phi_mode == 'received':
                    d_phi[j] += p[j]  # classifier j gets p_ij from class k
                else:
                    d_phi[k] += p[j]  # class-k sample sends p_ij to j
        if momentum is None:
            theta, phi = theta + d_theta, phi + d_phi
        else:
            theta = (1 - momentum) * theta + momentum * d_theta
            phi = (1 - momentum) * phi + momentum * d_phi
        losses.append(np.mean(step_losses))
    return losses, theta, phi


def run(loss, steps):
    return [loss(z, y).item() for z, y in steps]


@pytest.mark.parametrize('soft', [False, True])
def test_lambdas_zero_equal_mmpretrain_cross_entropy(soft):
    ours = GALALoss(num_classes=C, lambda1=0.0, lambda2=0.0, loss_weight=2)
    run(ours, make_steps(seed=1))  # statistics are non-zero now
    assert ours.pos_grad.sum() > 0
    ref = CrossEntropyLoss(use_soft=soft, loss_weight=2)
    for z, y in make_steps(seed=2):
        target = F.one_hot(y, C).float() * 0.8 + 0.04 if soft else y
        weight = torch.rand(len(y))
        for kwargs in (
            dict(),
            dict(weight=weight, avg_factor=3.0),
            dict(reduction_override='none'),
        ):
            z1 = z.clone().requires_grad_(True)
            z2 = z.clone().requires_grad_(True)
            v1, v2 = ours(z1, target, **kwargs), ref(z2, target, **kwargs)
            v1.sum().backward()
            v2.sum().backward()
            torch.testing.assert_close(v1, v2, rtol=0, atol=0)
            torch.testing.assert_close(z1.grad, z2.grad, rtol=0, atol=0)


@pytest.mark.parametrize('phi_mode', ['received', 'sent'])
def test_statistics_after_three_steps_equal_a_direct_computation(phi_mode):
    steps = make_steps()
    args = dict(lambda1=1.2, lambda2=0.9, eps=1e-3, phi_mode=phi_mode)
    loss = GALALoss(num_classes=C, **args)
    values = run(loss, steps)
    ref_losses, theta, phi = reference(steps, **args)
    np.testing.assert_allclose(values, ref_losses, rtol=1e-5)
    np.testing.assert_allclose(loss.pos_grad.numpy(), theta, rtol=1e-6)
    np.testing.assert_allclose(loss.neg_grad.numpy(), phi, rtol=1e-6)
    if phi_mode == 'sent':  # the authors' reading is theta itself
        np.testing.assert_allclose(phi, theta, rtol=1e-12)
    else:
        assert not np.allclose(phi, theta)


def test_the_two_phi_readings_differ_and_sum_to_the_batch_total():
    steps = make_steps(n_steps=1)
    received = GALALoss(num_classes=C, phi_mode='received')
    sent = GALALoss(num_classes=C, phi_mode='sent')
    run(received, steps), run(sent, steps)
    # First step: all statistics are zero, so both see the same p and the
    # total negative gradient of the batch is the same either way.
    torch.testing.assert_close(received.neg_grad.sum(), sent.neg_grad.sum())
    torch.testing.assert_close(sent.neg_grad, sent.pos_grad)


def test_target_logit_is_left_alone_and_rows_differ_by_class():
    loss = GALALoss(num_classes=C, lambda1=1.0, lambda2=1.0)
    run(loss, make_steps())
    from glag_mm.core import gala_adjust_logits

    z, y = make_steps(n_steps=1, seed=5)[0]
    adjusted = gala_adjust_logits(
        z, y, loss.pos_grad, loss.neg_grad, 1.0, 1.0, 1e-3
    )
    rows = torch.arange(len(y))
    torch.testing.assert_close(adjusted[rows, y], z[rows, y], rtol=0, atol=0)
    shift = (adjusted - z).double()
    theta, phi = loss.pos_grad, loss.neg_grad
    expected = (
        torch.log(theta + 1e-3)[None, :] - torch.log(phi + 1e-3)[y][:, None]
    )
    mask = F.one_hot(y, C).bool()
    torch.testing.assert_close(
        shift[~mask], expected[~mask], rtol=1e-5, atol=1e-5
    )


def test_moving_average():
    steps = make_steps(n_steps=4)
    args = dict(lambda1=1.0, lambda2=0.5, eps=1e-3, phi_mode='received')
    loss = GALALoss(num_classes=C, momentum=0.3, **args)
    values = run(loss, steps)
    ref_losses, theta, phi = reference(steps, momentum=0.3, **args)
    np.testing.assert_allclose(values, ref_losses, rtol=1e-5)
    np.testing.assert_allclose(loss.pos_grad.numpy(), theta, rtol=1e-6)
    np.testing.assert_allclose(loss.neg_grad.numpy(), phi, rtol=1e-6)


def test_eval_mode_does_not_update_and_soft_labels_use_argmax():
    loss = GALALoss(num_classes=C).eval()
    run(loss, make_steps())
    assert loss.pos_grad.sum() == 0 and loss.neg_grad.sum() == 0

    loss.train()
    hard = GALALoss(num_classes=C)
    (z, y), *_ = make_steps()
    soft = F.one_hot(y, C).float() * 0.7 + 0.3 / C  # argmax = y
    loss(z, soft)
    hard(z, y)
    torch.testing.assert_close(loss.pos_grad, hard.pos_grad)
    torch.testing.assert_close(loss.neg_grad, hard.neg_grad)


def test_state_dict_round_trip():
    steps = make_steps(n_steps=4)
    loss = GALALoss(num_classes=C, lambda1=1.2, lambda2=0.9)
    run(loss, steps[:3])
    state = loss.state_dict()
    assert set(state) == {'pos_grad', 'neg_grad'}
    restored = GALALoss(num_classes=C, lambda1=1.2, lambda2=0.9)
    restored.load_state_dict(state)
    torch.testing.assert_close(restored.pos_grad, loss.pos_grad)
    assert run(restored, steps[3:]) == run(loss, steps[3:])
    torch.testing.assert_close(restored.neg_grad, loss.neg_grad)


def test_errors():
    with pytest.raises(ValueError, match='phi_mode'):
        GALALoss(num_classes=C, phi_mode='both')
    with pytest.raises(ValueError, match='momentum'):
        GALALoss(num_classes=C, momentum=1.5)
    with pytest.raises(ValueError, match='num_classes'):
        GALALoss(num_classes=0)
    with pytest.raises(ValueError, match='num_classes=4'):
        GALALoss(num_classes=4)(*make_steps(n_steps=1)[0])


# ---------------------------------------------------------------------------
# DDP: the increments are summed over ranks.


def _ddp_worker(rank, world_size, init_file, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group(
        'gloo',
        init_method=f'file://{init_file}',
        rank=rank,
        world_size=world_size,
    )
    try:
        for phi_mode in ('received', 'sent'):
            loss = GALALoss(num_classes=C, phi_mode=phi_mode, momentum=None)
            for z, y in make_steps():
                half = len(y) // world_size
                part = slice(rank * half, (rank + 1) * half)
                loss(z[part], y[part])
            torch.save(
                loss.state_dict(),
                os.path.join(out_dir, f'{phi_mode}-{rank}.pth'),
            )
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_sum_on_two_gloo_ranks_equals_single_process(tmp_path):
    # Each rank sees half of every batch; after the all-reduce both hold
    # the statistics of the whole batch, as one process would. Forked
    # workers (one thread each) skip re-importing the OpenMMLab stack; a
    # parent that already holds a process group spawns clean ones instead.
    start_method = 'spawn' if dist.is_initialized() else 'fork'
    mp.start_processes(
        _ddp_worker,
        args=(2, str(tmp_path / 'pg'), str(tmp_path)),
        nprocs=2,
        join=True,
        start_method=start_method,
    )
    for phi_mode in ('received', 'sent'):
        single = GALALoss(num_classes=C, phi_mode=phi_mode)
        run(single, make_steps())
        for rank in range(2):
            state = torch.load(tmp_path / f'{phi_mode}-{rank}.pth')
            torch.testing.assert_close(state['pos_grad'], single.pos_grad)
            torch.testing.assert_close(state['neg_grad'], single.neg_grad)
