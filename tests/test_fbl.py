"""FBLHead: the CE limit, the formula and its gradient, lambda~, a(u)."""

import math
import uuid

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub
from mmpretrain.models.heads import LinearClsHead
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from glag_mm.core import authors_curriculum, fbl_class_strength
from glag_mm.models.heads import FBLHead

COUNTS = [500, 120, 40, 9, 2]
C, D, N = len(COUNTS), 6, 8


def fresh_hub(**info) -> MessageHub:
    hub = MessageHub.get_instance(f'test-fbl-{uuid.uuid4().hex}')
    for key, value in info.items():
        hub.update_info(key, value)
    return hub


def batch(seed=0, soft=False):
    g = torch.Generator().manual_seed(seed)
    feats = torch.rand(N, D, generator=g) * 2  # post-ReLU: f >= 0
    labels = torch.randint(0, C, (N,), generator=g)
    samples = []
    for y in labels.tolist():
        s = DataSample().set_gt_label(y)
        if soft:
            s.set_gt_score(F.one_hot(torch.tensor(y), C).float() * 0.9 + 0.02)
        samples.append(s)
    return feats, labels, samples


def twin_heads(**fbl_args):
    torch.manual_seed(0)
    ref = LinearClsHead(num_classes=C, in_channels=D)
    ref.init_weights()
    ours = FBLHead(num_classes=C, in_channels=D, **fbl_args)
    ours.fc.load_state_dict(ref.fc.state_dict())
    return ours, ref


def loss_and_grads(head, feats, samples):
    f = feats.clone().requires_grad_(True)
    head.zero_grad()
    loss = head.loss((f,), samples)['loss']
    loss.backward()
    return loss.detach(), f.grad, head.fc.weight.grad.clone()


@pytest.mark.parametrize('soft', [False, True])
def test_lambda_zero_equals_linear_head_with_cross_entropy(soft):
    fresh_hub(epoch=150, max_epochs=200)
    ours, ref = twin_heads(fbl_lambda=0.0)  # no class counts needed
    feats, _, samples = batch(soft=soft)
    for a, b in zip(
        loss_and_grads(ours, feats, samples),
        loss_and_grads(ref, feats, samples),
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def direct_fbl_loss(feats, weight, bias, labels, scale, eps):
    """The FBL formula written out independently, float64."""
    log_n = np.log(np.array(COUNTS, dtype=np.float64))
    strength = torch.tensor(
        (log_n.max() - log_n) / (log_n.max() - log_n.min())
    )
    z = feats @ weight.t() + bias
    norm = torch.sqrt((feats**2).sum(dim=1, keepdim=True))
    z_bal = z - scale * strength[None, :] / (norm + eps)
    return -torch.log_softmax(z_bal, dim=1)[torch.arange(N), labels].mean()


@pytest.mark.parametrize('curriculum', ['authors', 'constant'])
def test_adjustment_and_gradients_equal_the_formula(curriculum):
    fbl_lambda, eps = 60.0, 1e-6
    fresh_hub(epoch=95, max_epochs=200, iter=10, max_iters=30)
    a = 0.25 if curriculum == 'authors' else 1.0  # (95 / 190) ** 2
    ours, _ = twin_heads(
        class_counts=COUNTS,
        fbl_lambda=fbl_lambda,
        curriculum=curriculum,
        eps=eps,
    )
    feats, labels, samples = batch()
    loss, grad_f, grad_w = loss_and_grads(ours, feats, samples)
    assert ours.current_curriculum == a

    # Autograd through an independent float64 implementation.
    f = feats.double().requires_grad_(True)
    w = ours.fc.weight.detach().double().requires_grad_(True)
    b = ours.fc.bias.detach().double()
    expected = direct_fbl_loss(f, w, b, labels, a * fbl_lambda, eps)
    expected.backward()
    torch.testing.assert_close(loss.double(), expected.detach())
    torch.testing.assert_close(grad_f.double(), f.grad, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grad_w.double(), w.grad, rtol=1e-5, atol=1e-7)

    # The gradient w.r.t. f by hand: with g = (p - y) / N,
    # dL/df = W^T g + s (g . lambda~) f / (||f|| (||f|| + eps)^2).
    with torch.no_grad():
        fd, wd = feats.double(), w.detach()
        norm = fd.norm(dim=1, keepdim=True)
        strength = fbl_class_strength(COUNTS).double()
        s = a * fbl_lambda
        z = fd @ wd.t() + b - s * strength / (norm + eps)
        g = (z.softmax(dim=1) - F.one_hot(labels, C)) / N
        through_norm = (
            s * (g @ strength)[:, None] * fd / (norm * (norm + eps) ** 2)
        )
        by_hand = g @ wd + through_norm
    torch.testing.assert_close(grad_f.double(), by_hand, rtol=1e-5, atol=1e-7)
    assert through_norm.abs().max() > 1e-3  # the norm path is not negligible


def test_predict_and_forward_use_raw_logits():
    fresh_hub(epoch=150, max_epochs=200)
    ours, ref = twin_heads(class_counts=COUNTS, fbl_lambda=60.0)
    feats, _, _ = batch()
    torch.testing.assert_close(ours((feats,)), ref((feats,)))
    for p, q in zip(ours.predict((feats,)), ref.predict((feats,))):
        torch.testing.assert_close(p.pred_score, q.pred_score)


def test_class_strength_endpoints():
    strength = fbl_class_strength(COUNTS)
    assert strength[0] == 0.0 and strength[-1] == 1.0
    log_n = np.log(COUNTS)
    np.testing.assert_allclose(
        strength.numpy(),
        (log_n.max() - log_n) / (log_n.max() - log_n.min()),
        rtol=1e-6,
    )
    shuffled = fbl_class_strength([9, 500, 2])
    assert shuffled.tolist() == pytest.approx(
        [math.log(500 / 9) / math.log(250), 0.0, 1.0]
    )
    assert fbl_class_strength([7, 7, 7]).tolist() == [0.0, 0.0, 0.0]


def test_curriculum_values():
    head = FBLHead(num_classes=C, in_channels=D, class_counts=COUNTS)
    for epoch, expected in [
        (0, 0.0),
        (95, 0.25),
        (190, 1.0),
        (199, (199 / 190) ** 2),
    ]:
        fresh_hub(epoch=epoch, max_epochs=200)
        assert head.curriculum_value() == pytest.approx(expected)
        assert authors_curriculum(epoch, 200) == pytest.approx(expected)
    assert (199 / 190) ** 2 == pytest.approx(1.097, abs=1e-3)  # unclipped

    fresh_hub()  # outside a training loop
    assert head.curriculum_value() == 0.0

    for name, values in [
        ('convex', [0.0, 0.25, 1.0]),
        ('linear', [0.0, 0.5, 1.0]),
        ('concave', [0.0, math.sqrt(0.5), 1.0]),
        ('constant', [1.0, 1.0, 1.0]),
    ]:
        head = FBLHead(
            num_classes=C,
            in_channels=D,
            class_counts=COUNTS,
            curriculum=name,
        )
        for it, expected in zip(range(3), values):
            fresh_hub(iter=it, max_iters=3)
            assert head.curriculum_value() == pytest.approx(expected)


def test_lazy_counts_state_and_errors():
    from glag_mm.runtime import set_train_class_counts

    feats, _, samples = batch()
    fresh_hub(epoch=50, max_epochs=100)
    head = FBLHead(num_classes=C, in_channels=D)
    with pytest.raises(ValueError, match='ClassCountsHook'):
        head.loss((feats,), samples)
    set_train_class_counts(COUNTS[:3])
    with pytest.raises(ValueError, match='num_classes=5'):
        head.loss((feats,), samples)
    set_train_class_counts(COUNTS)
    head.loss((feats,), samples)
    assert head.class_counts.tolist() == COUNTS
    assert MessageHub.get_current_instance().get_scalar(
        'train/fbl_a'
    ).current() == pytest.approx((50 / 90) ** 2)

    restored = FBLHead(num_classes=C, in_channels=D)
    restored.load_state_dict(head.state_dict())
    assert restored.class_counts.tolist() == COUNTS

    with pytest.raises(ValueError, match='unknown curriculum'):
        FBLHead(num_classes=C, in_channels=D, curriculum='cosine')
    with pytest.raises(ValueError, match='fbl_lambda'):
        FBLHead(num_classes=C, in_channels=D, fbl_lambda=-1)
    with pytest.raises(ValueError, match='zero training images'):
        FBLHead(num_classes=3, in_channels=D, class_counts=[3, 0, 1])
    with pytest.raises(ValueError, match='needs max_epochs > 10'):
        fresh_hub(epoch=0, max_epochs=1)  # e.g. an iteration-based loop
        FBLHead(num_classes=C, in_channels=D).curriculum_value()


def test_swaps_in_for_linear_head_in_an_image_classifier():
    fresh_hub(epoch=20, max_epochs=40)
    model = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='ResNet_CIFAR', depth=18),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(
                type='FBLHead',
                num_classes=C,
                in_channels=512,
                class_counts=COUNTS,
                loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
            ),
        )
    )
    _, _, samples = batch()
    inputs = torch.rand(2, 3, 8, 8)
    losses = model(inputs, samples[:2], mode='loss')
    assert torch.isfinite(losses['loss'])
    assert model.head.current_curriculum == pytest.approx((20 / 30) ** 2)
