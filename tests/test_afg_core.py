"""Pure-PyTorch core of GLAG's stage two: Tukey transform, class feature
bank, calibration, generation plan and distillation (METHOD.md stage two)."""

import math
import threading

import pytest
import torch
import torch.multiprocessing as mp
from afg_gloo_worker import (
    GLOO_COUNTS,
    GLOO_DIM,
    GLOO_SEED,
    fill_bank,
    gloo_worker,
    make_features,
    shard,
)
from test_tools import free_port

from glag_mm.core import (
    ClassFeatureBank,
    anchor_support,
    calibrated_mean,
    calibrated_sample,
    check_tukey_lambda,
    distillation_loss,
    donor_candidates,
    donor_weights,
    feature_bank,
    generate_features,
    generation_plan,
    num_donors,
    support_sets,
    tail_classes,
    tukey_transform,
)

# ----------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------


def _features(counts, dim, seed=0):
    return make_features(counts, dim, seed)


def _bank(x, y, idx=None, dtype=torch.float64, rank=None, batch=7, nc=None):
    nc = int(y.max()) + 1 if nc is None else nc
    bank = ClassFeatureBank(nc, x.shape[1], dtype, rank=rank)
    return fill_bank(bank, x, y, idx, batch)


def _dense_mixture(bank, donors, weights, alpha):
    cov = sum(w * bank.covariance(c) for c, w in zip(donors, weights))
    return cov + alpha * torch.eye(bank.dim, dtype=torch.float64)


def _assert_moments(samples, mean, cov, sigmas=5.0):
    """Sample mean / covariance within `sigmas` standard errors.

    SE(mean_i) = sqrt(S_ii / n); SE(cov_ij) = sqrt((S_ii S_jj + S_ij^2) / n)
    for Gaussian samples.
    """
    n = samples.shape[0]
    x = samples.double()
    var = cov.diagonal()
    se_mean = (var / n).sqrt()
    assert torch.all((x.mean(0) - mean).abs() <= sigmas * se_mean)
    se_cov = ((var[:, None] * var[None, :] + cov.square()) / n).sqrt()
    emp = torch.cov(x.T)
    assert torch.all((emp - cov).abs() <= sigmas * se_cov)


# ----------------------------------------------------------------------
# Tukey
# ----------------------------------------------------------------------


def test_tukey_values_identity_and_log():
    x = torch.tensor([0.0, 1.0, 4.0, 9.0])
    assert torch.equal(tukey_transform(x, 0.5), torch.tensor([0, 1, 2, 3.0]))
    assert tukey_transform(x, 1) is x
    torch.testing.assert_close(tukey_transform(x, 0), torch.log(x + 1e-6))
    torch.testing.assert_close(
        tukey_transform(x, 0, eps=0.5), torch.log(x + 0.5)
    )
    neg = torch.tensor([-2.0, 3.0])
    assert torch.equal(tukey_transform(neg, 2), torch.tensor([4.0, 9.0]))
    assert torch.equal(tukey_transform(neg, 1), neg)


@pytest.mark.parametrize('lam', [0.5, 0, 1.5, -0.5])
def test_tukey_negative_features_fractional_power(lam):
    with pytest.raises(ValueError, match='non-negative .*post-ReLU.*lam=1'):
        tukey_transform(torch.tensor([0.5, -0.1]), lam)


def test_check_tukey_lambda():
    assert check_tukey_lambda(1) == 1.0
    with pytest.raises(ValueError):
        check_tukey_lambda(float('nan'))
    with pytest.raises(TypeError):
        check_tukey_lambda('0.5')


# ----------------------------------------------------------------------
# feature bank: statistics
# ----------------------------------------------------------------------


def test_bank_statistics_equal_direct_computation():
    counts = [12, 30, 7, 2]
    x, y, idx = _features(counts, 5)
    bank = _bank(x, y, idx).finalize(all_gather=False)
    assert bank.counts.tolist() == counts
    for c in range(len(counts)):
        rows = x[y == c][torch.argsort(idx[y == c])]
        mean = rows.mean(0)
        torch.testing.assert_close(bank.means[c].double(), mean)
        torch.testing.assert_close(bank.covariance(c), torch.cov(rows.T))
        # rows are the centred features in dataset-index order
        torch.testing.assert_close(
            bank.class_rows(c), rows - bank.means[c].double()
        )
    # float16 storage: statistics of the rounded features, tolerance 1e-3
    half = _bank(x, y, idx, dtype=torch.float16).finalize(all_gather=False)
    for c in range(len(counts)):
        rows = x[y == c]
        torch.testing.assert_close(
            half.means[c].double(), rows.mean(0), atol=1e-3, rtol=1e-3
        )
        torch.testing.assert_close(
            half.covariance(c), torch.cov(rows.T), atol=2e-3, rtol=1e-2
        )
    assert half.memory_bytes() < bank.memory_bytes()


def test_bank_sharded_adds_equal_single_process(monkeypatch):
    # tiny storage blocks and gather rounds: exercise the multi-block paths
    monkeypatch.setattr(feature_bank, '_BLOCK_BYTES', 4 * 4 * 6)
    monkeypatch.setattr(feature_bank, '_ROUND_BYTES', 4 * 4 * 5)
    counts = [9, 20, 4, 1, 15]
    x, y, idx = _features(counts, 4, seed=1)
    single = _bank(x, y, idx, dtype=torch.float32).finalize(all_gather=False)
    world = 2
    slots, barrier = [None] * world, threading.Barrier(world)
    banks, errors = [None] * world, []

    def make_gather(rank):
        def gather(t):
            slots[rank] = t.clone()
            barrier.wait()
            out = [s.clone() for s in slots]
            barrier.wait()
            return out

        return gather

    def run(rank):
        try:
            mine = shard(len(y), world, rank)  # padded: one repeat
            b = _bank(x[mine], y[mine], idx[mine], torch.float32, nc=5)
            banks[rank] = b.finalize(all_gather=make_gather(rank))
        except Exception as exc:  # pragma: no cover - surfaced below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for b in banks:
        for key, val in single.state_dict().items():
            assert torch.equal(b.state_dict()[key], val), key


def test_bank_two_gloo_ranks_equal_single_process(tmp_path):
    world = 2
    mp.spawn(
        gloo_worker,
        args=(world, free_port(), str(tmp_path)),
        nprocs=world,
        join=True,
    )
    x, y, idx = make_features(GLOO_COUNTS, GLOO_DIM, GLOO_SEED)
    single = _bank(x, y, idx, dtype=torch.float16).finalize(all_gather=False)
    for rank in range(world):
        state = torch.load(tmp_path / f'rank{rank}.pt')
        for key, val in single.state_dict().items():
            assert torch.equal(state[key], val), (rank, key)


def test_bank_state_dict_round_trip_and_errors():
    x, y, idx = _features([10, 6, 3], 4)
    bank = _bank(x, y, idx, dtype=torch.float32).finalize(all_gather=False)
    other = ClassFeatureBank(3, 4, torch.float32)
    with pytest.raises(RuntimeError, match='finalize'):
        other.sample_class(torch.tensor([0]))
    other.load_state_dict(bank.state_dict())
    cls = torch.tensor([0, 1, 1, 2])
    a = bank.sample_class(cls, torch.Generator().manual_seed(5))
    b = other.sample_class(cls, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match='shape'):
        ClassFeatureBank(4, 4).load_state_dict(bank.state_dict())
    with pytest.raises(RuntimeError, match='reset'):
        bank.add(x[:2], y[:2], idx[:2])
    with pytest.raises(ValueError, match='every add'):
        _bank(x[:4], y[:4], idx[:4]).add(x[4:6], y[4:6])
    with pytest.raises(ValueError, match=r'\[0, 3\)'):
        ClassFeatureBank(3, 4).add(x[:2], torch.tensor([0, 3]))


# ----------------------------------------------------------------------
# feature bank: factorised sampling against the dense formula
# ----------------------------------------------------------------------


def test_sample_class_matches_dense_gaussian():
    x, y, idx = _features([15, 40, 25], 6, seed=4)
    bank = _bank(x, y, idx, dtype=torch.float32).finalize(all_gather=False)
    gen = torch.Generator().manual_seed(0)
    n = 200_000
    cls = torch.tensor([1, 2]).repeat_interleave(n // 2)
    out = bank.sample_class(cls, gen)
    assert out.shape == (n, 6) and out.dtype == torch.float32
    for c in (1, 2):
        _assert_moments(
            out[cls == c], bank.means[c].double(), bank.covariance(c)
        )


def test_sample_mixture_matches_dense_formula_with_alpha():
    x, y, idx = _features([10, 20, 30, 25], 6, seed=5)
    bank = _bank(x, y, idx, dtype=torch.float32).finalize(all_gather=False)
    n, alpha = 200_000, 0.1
    half = n // 2
    centre_a = torch.linspace(0.0, 1.0, 6)
    centre_b = torch.linspace(2.0, -1.0, 6)
    centres = torch.cat([centre_a.expand(half, 6), centre_b.expand(half, 6)])
    donors = torch.cat(
        [
            torch.tensor([0, 1, 2]).expand(half, 3),
            torch.tensor([3, 2, 1]).expand(half, 3),
        ]
    )
    w_a, w_b = torch.tensor([0.5, 0.3, 0.2]), torch.tensor([0.1, 0.6, 0.3])
    weights = torch.cat([w_a.expand(half, 3), w_b.expand(half, 3)])
    gen = torch.Generator().manual_seed(1)
    out = bank.sample_mixture(centres, donors, weights, alpha, gen)
    _assert_moments(
        out[:half],
        centre_a.double(),
        _dense_mixture(bank, [0, 1, 2], w_a.tolist(), alpha),
    )
    _assert_moments(
        out[half:],
        centre_b.double(),
        _dense_mixture(bank, [3, 2, 1], w_b.tolist(), alpha),
    )


def test_rank_factor_keeps_trace_and_samples_its_covariance():
    x, y, idx = _features([40, 30, 3], 6, seed=6)
    exact = _bank(x, y, idx, dtype=torch.float32).finalize(all_gather=False)
    low = _bank(x, y, idx, dtype=torch.float32, rank=2)
    low.finalize(all_gather=False)
    assert low.exact.tolist() == [False, False, True]
    assert low.offsets.tolist() == [0, 2, 4, 7]  # 2 + 2 + 3 rows
    for c in (0, 1):
        full, approx = exact.covariance(c), low.covariance(c)
        torch.testing.assert_close(
            approx.trace(), full.trace(), rtol=1e-5, atol=1e-7
        )
        top = torch.linalg.eigvalsh(full)[-2:]
        torch.testing.assert_close(
            torch.linalg.eigvalsh(approx)[-2:], top, rtol=1e-5, atol=1e-7
        )
    torch.testing.assert_close(low.covariance(2), exact.covariance(2))
    n = 100_000
    out = low.sample_class(
        torch.zeros(n, dtype=torch.long), torch.Generator().manual_seed(2)
    )
    _assert_moments(out, low.means[0].double(), low.covariance(0))
    with pytest.raises(ValueError, match='rank'):
        low.anchor_rows(torch.tensor([0]))


def test_anchor_rows_spread_evenly():
    x, y, idx = _features([5, 8], 3)
    bank = _bank(x, y, idx).finalize(all_gather=False)
    rows = bank.anchor_rows(torch.tensor([1] * 16 + [0] * 3))
    assert torch.equal(
        torch.bincount(rows[:16] - 5, minlength=8), torch.full((8,), 2)
    )
    assert len(set(rows[16:].tolist())) == 3 and rows[16:].max() < 5
    feats = bank.features(rows)
    for r, f in zip(rows.tolist(), feats):
        c = 0 if r < 5 else 1
        j = r - (0 if c == 0 else 5)
        real = x[y == c][torch.argsort(idx[y == c])][j]
        torch.testing.assert_close(f.double(), real, atol=1e-6, rtol=0)


def test_one_image_class_cannot_be_sampled_or_donate():
    x, y, idx = _features([6, 1, 9], 3)
    bank = _bank(x, y, idx).finalize(all_gather=False)
    with pytest.raises(ValueError, match='single training feature.*tail'):
        bank.sample_class(torch.tensor([0, 1]))
    with pytest.raises(ValueError, match='single training feature.*donor'):
        bank.sample_mixture(
            torch.zeros(1, 3), torch.tensor([[1, 2]]), torch.ones(1, 2) / 2
        )


# ----------------------------------------------------------------------
# calibration
# ----------------------------------------------------------------------


def test_tail_mask_by_count_and_fraction():
    counts = torch.tensor([500, 120, 100, 99, 20, 5])
    mask = [False, False, False, True, True, True]
    assert tail_classes(counts).tolist() == mask
    assert tail_classes(counts, 100.0).tolist() == mask
    # fraction 0.25 of n_max = 125
    assert tail_classes(counts, 0.25).tolist() == [False] + [True] * 5
    for bad in (0, 1.5, -0.1, True, '100'):
        with pytest.raises((ValueError, TypeError)):
            tail_classes(counts, bad)


def test_donor_candidates_and_counts():
    counts = torch.tensor([5, 50, 5, 20])
    cand = donor_candidates(counts)
    brute = torch.tensor(
        [[counts[i] > counts[c] for i in range(4)] for c in range(4)]
    )
    assert torch.equal(cand, brute)
    assert num_donors(counts).tolist() == brute.sum(1).tolist()


def test_support_sets_and_weights_against_brute_force():
    g = torch.Generator().manual_seed(7)
    num_classes, dim, k = 12, 5, 3
    counts = torch.randint(2, 60, (num_classes,), generator=g)
    means = torch.randn(num_classes, dim, generator=g)
    anchors = torch.randn(40, dim, generator=g)
    small = torch.nonzero(num_donors(counts) >= k).flatten()
    cls = small[torch.randint(len(small), (40,), generator=g)]
    donors = support_sets(anchors, cls, means, counts, k)
    weights = donor_weights(anchors, donors, means, counts)
    for m in range(40):
        cand = [i for i in range(num_classes) if counts[i] > counts[cls[m]]]
        dist_ = {i: float((anchors[m] - means[i]).norm()) for i in cand}
        best = sorted(cand, key=dist_.get)[:k]
        assert donors[m].tolist() == best
        raw = torch.tensor([counts[i] / dist_[i] for i in best])
        torch.testing.assert_close(weights[m], (raw / raw.sum()).float())
    uniform = donor_weights(anchors, donors, means, counts, 'uniform')
    assert torch.equal(uniform, torch.full((40, k), 1 / k))


def test_calibration_reduces_to_free_lunch():
    g = torch.Generator().manual_seed(8)
    k, dim = 3, 7
    means = torch.randn(10, dim, generator=g)
    anchors = torch.randn(6, dim, generator=g)
    donors = torch.randint(10, (6, k), generator=g)
    weights = torch.full((6, k), 1 / k)
    s = torch.full((6,), k / (k + 1))
    out = calibrated_mean(anchors, donors, weights, means, s)
    free_lunch = torch.stack(
        [(means[donors[m]].sum(0) + anchors[m]) / (k + 1) for m in range(6)]
    )
    torch.testing.assert_close(out, free_lunch)
    # and the general form against a direct computation
    w = torch.rand(6, k, generator=g)
    w = w / w.sum(1, keepdim=True)
    s = torch.rand(6, generator=g)
    direct = torch.stack(
        [
            (1 - s[m]) * anchors[m]
            + s[m] * (w[m, :, None] * means[donors[m]]).sum(0)
            for m in range(6)
        ]
    )
    torch.testing.assert_close(
        calibrated_mean(anchors, donors, w, means, s), direct
    )


def test_calibrated_sample_moments():
    x, y, idx = _features([30, 25, 40, 4], 6, seed=9)
    bank = _bank(x, y, idx, dtype=torch.float32).finalize(all_gather=False)
    anchor = bank.features(bank.anchor_rows(torch.tensor([3])))
    n, alpha = 100_000, 0.1
    conf = torch.tensor([0.0, 0.0, 0.0, 0.6])
    out = calibrated_sample(
        bank,
        anchor.expand(n, 6),
        torch.full((n,), 3),
        conf,
        k=3,
        alpha=alpha,
        generator=torch.Generator().manual_seed(3),
    )
    donors = support_sets(anchor, torch.tensor([3]), bank.means, bank.counts)
    w = donor_weights(anchor, donors, bank.means, bank.counts)
    mean = calibrated_mean(anchor, donors, w, bank.means, conf[[3]])[0]
    cov = _dense_mixture(bank, donors[0].tolist(), w[0].tolist(), alpha)
    _assert_moments(out, mean.double(), cov)


def test_one_image_tail_class_without_donors():
    x, y, idx = _features([6, 1], 3)
    bank = _bank(x, y, idx).finalize(all_gather=False)
    anchor = bank.features(bank.anchor_rows(torch.tensor([1])))
    with pytest.raises(ValueError, match='class 1 .*fewer than k=3 donors'):
        calibrated_sample(
            bank, anchor, torch.tensor([1]), torch.full((2,), 0.6), k=3
        )


def test_generate_features_tail_and_own_classes():
    x, y, idx = _features([40, 30, 25, 6, 3], 5, seed=10)
    bank = _bank(x, y, idx, dtype=torch.float32).finalize(all_gather=False)
    tail = tail_classes(bank.counts, 10)
    conf = torch.full((5,), 0.6)
    classes = torch.tensor([4, 0, 3, 3, 1, 4, 2, 4])
    support = anchor_support(bank, tail, k=2)
    assert (support[0][bank.offsets[3] :] >= 0).all()
    assert (support[0][: bank.offsets[3]] == -1).all()
    out = {}
    for name, rs in (('search', None), ('cached', support)):
        out[name] = generate_features(
            bank,
            classes,
            tail,
            conf,
            k=2,
            generator=torch.Generator().manual_seed(4),
            row_support=rs,
        )
    assert out['search'].shape == (8, 5)
    torch.testing.assert_close(out['search'], out['cached'])
    # own-class rows equal sample_class with the same random stream
    gen = torch.Generator().manual_seed(4)
    rows = bank.anchor_rows(classes[tail[classes]], gen)
    anchors = bank.features(rows)
    d = support_sets(
        anchors, classes[tail[classes]], bank.means, bank.counts, 2
    )
    w = donor_weights(anchors, d, bank.means, bank.counts)
    c = calibrated_mean(
        anchors, d, w, bank.means, conf[classes[tail[classes]]]
    )
    torch.testing.assert_close(
        out['search'][tail[classes]], bank.sample_mixture(c, d, w, 0.0, gen)
    )
    torch.testing.assert_close(
        out['search'][~tail[classes]],
        bank.sample_class(classes[~tail[classes]], gen),
    )


# ----------------------------------------------------------------------
# generation plan
# ----------------------------------------------------------------------


def test_generation_plan_tops_every_class_up_to_n_max():
    counts = torch.tensor([400, 150, 60, 20, 7, 3])
    labels = torch.repeat_interleave(torch.arange(6), counts)
    gen = torch.Generator().manual_seed(11)
    epochs, batch = 20, 32
    real = torch.zeros(6)
    made = torch.zeros(6)
    for _ in range(epochs):
        perm = labels[torch.randperm(len(labels), generator=gen)]
        for a in range(0, len(perm), batch):
            chunk = perm[a : a + batch]
            plan = generation_plan(counts, chunk, generator=gen)
            real += torch.bincount(chunk, minlength=6)
            made += torch.bincount(plan, minlength=6)
    per_epoch = (real + made) / epochs
    # expected exactly 400 per class; the generated part is a sum of
    # Bernoulli roundings (variance < batches/4), so 4 standard errors
    batches = math.ceil(len(labels) / batch)
    tol = 4 * math.sqrt(batches / 4 / epochs)
    assert torch.all((per_epoch - 400).abs() <= tol), per_epoch
    # the largest class is never generated; in all, sum_c (n_max - n_c)
    # per epoch, i.e. B (n_max C / N - 1) per full batch of B
    assert made[0] == 0
    total = (400 - counts).sum().item()
    assert abs(made.sum().item() / epochs - total) <= 4 * math.sqrt(
        6 * batches / 4 / epochs
    )


def test_generation_plan_ratio_mode():
    labels = torch.tensor([0, 1, 1, 2])
    plan = generation_plan(
        torch.tensor([9, 5, 2]), labels, mode='ratio', ratio=2
    )
    assert plan.tolist() == [0, 0, 1, 1, 1, 1, 2, 2]
    gen = torch.Generator().manual_seed(0)
    sizes = [
        generation_plan(
            None, labels, mode='ratio', ratio=0.5, generator=gen
        ).numel()
        for _ in range(2000)
    ]
    assert abs(sum(sizes) / 2000 - 2.0) < 0.1
    with pytest.raises(ValueError, match='mode'):
        generation_plan(torch.tensor([1]), labels, mode='bogus')


# ----------------------------------------------------------------------
# distillation
# ----------------------------------------------------------------------


def test_distillation_zero_when_student_equals_teacher():
    z = torch.randn(5, 7, requires_grad=True)
    loss = distillation_loss(z, z.detach().clone(), temperature=2.0)
    assert loss.item() == 0.0


def test_distillation_equals_direct_computation_and_masks():
    g = torch.Generator().manual_seed(12)
    s = torch.randn(6, 4, generator=g, requires_grad=True)
    t = torch.randn(6, 4, generator=g)
    temp = 2.5
    p_t = torch.softmax(t / temp, 1)
    kl = (p_t * (p_t.log() - torch.log_softmax(s / temp, 1))).sum(1)
    direct = temp**2 * kl
    torch.testing.assert_close(distillation_loss(s, t, temp), direct.mean())
    mask = torch.tensor([True, False, True, False, False, True])
    torch.testing.assert_close(
        distillation_loss(s, t, temp, mask), direct[mask].mean()
    )
    # agrees with torch's kl_div (batchmean over the selected rows)
    ref = torch.nn.functional.kl_div(
        torch.log_softmax(s[mask] / temp, 1), p_t[mask], reduction='batchmean'
    )
    torch.testing.assert_close(
        distillation_loss(s, t, temp, mask), ref * temp**2
    )
    none = distillation_loss(s, t, temp, torch.zeros(6, dtype=torch.bool))
    assert none.item() == 0.0
    none.backward()
    assert torch.equal(s.grad, torch.zeros_like(s))
    with pytest.raises(ValueError, match='temperature'):
        distillation_loss(s, t, 0)
