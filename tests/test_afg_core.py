"""Pure-PyTorch core of GLAG's stage two: Tukey transform, statistics
builder, bounded class statistics, calibration, the generator, the
generation plan and distillation (docs/method.md stage two)."""

import math

import pytest
import torch
import torch.multiprocessing as mp
from afg_gloo_worker import (
    GLOO_COUNTS,
    GLOO_DIM,
    GLOO_FINALIZE,
    GLOO_SEED,
    GLOO_TAIL,
    fill,
    gloo_worker,
    make_features,
    run_in_threads,
    shard,
)
from test_tools import free_port

from glag_mm.core import (
    ClassStatistics,
    StatisticsBuilder,
    anchor_positions,
    calibrated_mean,
    check_generation_setup,
    check_tukey_lambda,
    distillation_loss,
    generate_features,
    generation_plan,
    num_donors,
    seeded_generators,
    statistics_builder,
    support_sets,
    tail_classes,
    tukey_transform,
)
from glag_mm.core.calibration import smoothed_accuracy
from glag_mm.core.distill import adjusted_teacher_logits

# ----------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------


def _stats(x, y, idx=None, tail=None, nc=None, batch=7, **kw):
    nc = int(y.max()) + 1 if nc is None else nc
    builder = fill(StatisticsBuilder(nc, x.shape[1]), x, y, idx, batch)
    tail = None if tail is None else torch.tensor(tail)
    return builder.finalize(tail, all_gather=False, **kw)


def _sorted_rows(x, y, idx, c):
    return x[y == c][torch.argsort(idx[y == c])]


def _covariance(stats, c):
    """Class c's D x D covariance s_c F_c^T F_c + rho_c I, float64."""
    a, size = int(stats.factor_start[c]), int(stats.factor_size[c])
    rows = stats.rows[a : a + size].double()
    cov = rows.T @ rows * float(stats.factor_scale[c])
    return cov + float(stats.residual[c]) * torch.eye(stats.dim).double()


def _dense_mixture(stats, donors, weights, alpha):
    cov = sum(w * _covariance(stats, c) for c, w in zip(donors, weights))
    return cov + alpha * torch.eye(stats.dim, dtype=torch.float64)


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
# statistics: builder, exact and bounded factors
# ----------------------------------------------------------------------


def test_statistics_equal_direct_computation():
    counts = [12, 30, 7, 2]
    x, y, idx = make_features(counts, 5)
    stats = _stats(x, y, idx)
    assert stats.counts.tolist() == counts
    assert stats.exact.all() and stats.rows.dtype == torch.float32
    for c in range(len(counts)):
        rows = _sorted_rows(x, y, idx, c)
        torch.testing.assert_close(stats.means[c].double(), rows.mean(0))
        torch.testing.assert_close(
            _covariance(stats, c), torch.cov(rows.T), atol=1e-6, rtol=1e-5
        )


def test_sharded_adds_equal_single_process(monkeypatch):
    # tiny storage blocks and gather rounds: exercise the multi-block paths
    monkeypatch.setattr(statistics_builder, '_ROUND_BYTES', 4 * 4 * 5)
    counts = [9, 20, 4, 1, 15]
    tail = [True, False, True, True, False]
    x, y, idx = make_features(counts, 4, seed=1)
    single = _stats(x, y, idx, tail, exact_rows=10, rank=2, num_donors=1)
    world = 2

    def finalize(rank, all_gather):
        mine = shard(len(y), world, rank)  # padded: one repeat
        builder = fill(StatisticsBuilder(5, 4), x[mine], y[mine], idx[mine])
        return builder.finalize(
            torch.tensor(tail),
            num_donors=1,
            exact_rows=10,
            rank=2,
            all_gather=all_gather,
        )

    results = run_in_threads(world, finalize)
    for stats in results:
        for key, val in single.tensors().items():
            assert torch.equal(stats.tensors()[key], val), key


def test_two_gloo_ranks_equal_single_process(tmp_path):
    world = 2
    mp.spawn(
        gloo_worker,
        args=(world, free_port(), str(tmp_path)),
        nprocs=world,
        join=True,
    )
    x, y, idx = make_features(GLOO_COUNTS, GLOO_DIM, GLOO_SEED)
    single = _stats(x.float(), y, idx, GLOO_TAIL, **GLOO_FINALIZE)
    for rank in range(world):
        other = ClassStatistics.load(str(tmp_path / f'rank{rank}.pt'))
        for key, val in single.tensors().items():
            assert torch.equal(other.tensors()[key], val), (rank, key)


def test_bounded_factor_is_ppca_of_the_dense_covariance():
    # classes above exact_rows keep the top-r eigenpairs plus the mean of
    # the other eigenvalues: V diag(lam_r) V^T + rho (I - V V^T)
    x, y, idx = make_features([40, 30, 6], 8, seed=6)
    stats = _stats(x, y, idx, exact_rows=10, rank=3)
    assert stats.exact.tolist() == [False, False, True]
    assert stats.factor_size.tolist() == [3, 3, 6]
    for c in (0, 1):
        dense = torch.cov(_sorted_rows(x, y, idx, c).T)
        lam, vec = torch.linalg.eigh(dense)
        top, v = lam.flip(0)[:3], vec.flip(1)[:, :3]
        rho = lam.flip(0)[3:].sum() / (8 - 3)
        ppca = v @ torch.diag(top) @ v.T + rho * (torch.eye(8) - v @ v.T)
        approx = _covariance(stats, c)
        torch.testing.assert_close(approx, ppca, atol=1e-5, rtol=1e-4)
        # the error left is exactly the discarded spectrum's spread
        err = torch.linalg.matrix_norm(approx - dense)
        expected = (lam.flip(0)[3:] - rho).square().sum().sqrt()
        torch.testing.assert_close(err, expected, atol=1e-5, rtol=1e-4)
        assert err < 0.5 * torch.linalg.matrix_norm(dense)
        torch.testing.assert_close(approx.trace(), dense.trace())
    torch.testing.assert_close(
        _covariance(stats, 2),
        torch.cov(_sorted_rows(x, y, idx, 2).T),
        atol=1e-6,
        rtol=1e-5,
    )


def test_cost_per_draw_is_bounded_whatever_the_class_size():
    counts = [30, 20, 12, 9, 5]
    tail = [False, False, True, True, True]
    for scale in (1, 4):
        x, y, idx = make_features([n * scale for n in counts], 6, seed=2)
        stats = _stats(x, y, idx, tail, exact_rows=16, rank=4, num_donors=2)
        # rows read by one draw: one factor per donor, never n_c rows
        assert int(stats.factor_size.max()) <= 16
        assert stats.anchor_size.tolist() == [0, 0] + [
            n * scale for n in counts[2:]
        ]


def test_exact_draws_match_dense_gaussian_and_mixture():
    x, y, idx = make_features([10, 20, 30, 25], 6, seed=5)
    stats = _stats(x, y, idx)
    gen = torch.Generator().manual_seed(1)
    n, alpha = 200_000, 0.1
    # own class: N(0, Sigma_2)
    own = stats.noise(
        n, torch.arange(n), torch.full((n,), 2), torch.ones(n), None, gen
    )
    _assert_moments(
        own, torch.zeros(6, dtype=torch.float64), _covariance(stats, 2)
    )
    # mixture sum_i w_i Sigma_i + alpha I
    w = torch.tensor([0.5, 0.3, 0.2])
    mix = stats.noise(
        n,
        torch.arange(n).repeat_interleave(3),
        torch.tensor([0, 1, 3]).repeat(n),
        w.repeat(n),
        torch.full((n,), alpha),
        gen,
    )
    cov = _dense_mixture(stats, [0, 1, 3], w.tolist(), alpha)
    _assert_moments(mix, torch.zeros(6, dtype=torch.float64), cov)


def test_factor_draws_match_their_covariance():
    x, y, idx = make_features([40, 30, 3], 6, seed=6)
    stats = _stats(x, y, idx, exact_rows=10, rank=2)
    n = 100_000
    out = stats.noise(
        n,
        torch.arange(n),
        torch.zeros(n, dtype=torch.long),
        torch.ones(n),
        None,
        torch.Generator().manual_seed(2),
    )
    _assert_moments(
        out, torch.zeros(6, dtype=torch.float64), _covariance(stats, 0)
    )


def test_one_image_class_cannot_be_drawn_from_its_own_statistics():
    x, y, idx = make_features([6, 1, 9], 3)
    stats = _stats(x, y, idx)
    with pytest.raises(ValueError, match='class 1 has 1 training.*tail'):
        generate_features(stats, torch.full((3,), 0.6), torch.tensor([0, 1]))


def test_file_round_trip_loads_tensors_only(tmp_path):
    x, y, idx = make_features([30, 12, 5, 3], 4)
    stats = _stats(
        x,
        y,
        idx,
        [False, False, True, True],
        exact_rows=8,
        rank=2,
        num_donors=2,
    )
    path = str(tmp_path / 'stats.pth')
    stats.save(path, key='abc')
    # plain tensors, ints and strings: loads with weights_only=True
    raw = torch.load(path, weights_only=True)
    assert raw['info'] == {'key': 'abc'}
    loaded = ClassStatistics.load(path)
    assert loaded.info == {'key': 'abc'}
    for key, val in stats.tensors().items():
        assert torch.equal(loaded.tensors()[key], val), key
    classes = torch.tensor([0, 1, 2, 2, 3])
    conf = torch.full((4,), 0.6)
    a = generate_features(stats, conf, classes, 0.1, seeded_generators(0, 5))
    b = generate_features(loaded, conf, classes, 0.1, seeded_generators(0, 5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


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


def test_num_donors_counts_the_larger_classes():
    counts = torch.tensor([5, 50, 5, 20])
    brute = [sum(int(n > c) for n in counts) for c in counts]
    assert num_donors(counts).tolist() == brute == [2, 0, 2, 1]


def test_support_sets_and_weights_against_brute_force():
    g = torch.Generator().manual_seed(7)
    num_classes, dim, k = 12, 5, 3
    counts = torch.randint(2, 60, (num_classes,), generator=g)
    means = torch.randn(num_classes, dim, generator=g)
    anchors = torch.randn(40, dim, generator=g)
    small = torch.nonzero(num_donors(counts) >= k).flatten()
    cls = small[torch.randint(len(small), (40,), generator=g)]
    donors, weights = support_sets(anchors, cls, means, counts, k)
    for m in range(40):
        cand = [i for i in range(num_classes) if counts[i] > counts[cls[m]]]
        dist_ = {i: float((anchors[m] - means[i]).norm()) for i in cand}
        best = sorted(cand, key=dist_.get)[:k]
        assert donors[m].tolist() == best
        raw = torch.tensor([counts[i] / dist_[i] for i in best])
        torch.testing.assert_close(weights[m], (raw / raw.sum()).float())
    same, uniform = support_sets(anchors, cls, means, counts, k, 'uniform')
    assert torch.equal(same, donors)
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


def test_generator_draws_calibrated_and_own_distributions():
    counts = [40, 30, 25, 6, 3]
    tail = [False, False, False, True, True]
    x, y, idx = make_features(counts, 5, seed=10)
    stats = _stats(x, y, idx, tail, num_donors=2, exact_rows=20, rank=3)
    conf = torch.tensor([0.0, 0.0, 0.0, 0.5, 0.7])
    n = 60_000
    # tail class 4 (3 anchors): every anchor equally often, so the mean is
    # the mean of the calibrated means (1 - s) x + s sum_i w_i mu_i
    feats, labels = generate_features(
        stats, conf, torch.full((n,), 4), 0.0, seeded_generators(0, 1)
    )
    assert labels.tolist() == [4] * n
    a, m = int(stats.anchor_start[4]), int(stats.anchor_size[4])
    table = slice(int(stats.anchor_base[4]), int(stats.anchor_base[4]) + m)
    anchors = stats.means[4] + stats.rows[a : a + m]
    d, w = stats.donors[table], stats.donor_weights[table]
    centres = calibrated_mean(
        anchors, d, w, stats.means, torch.full((m,), 0.7)
    )
    real = _sorted_rows(x, y, idx, 4).float()
    torch.testing.assert_close(anchors, real, atol=1e-6, rtol=0)
    # support sets are the brute-force ones of docs/method.md item 4
    torch.testing.assert_close(
        d,
        support_sets(real, torch.full((m,), 4), stats.means, stats.counts, 2)[
            0
        ],
    )
    torch.testing.assert_close(
        feats.mean(0), centres.mean(0), atol=0.02, rtol=0
    )
    # a head class (exact_rows=20 < 25: a factor) draws around its mean
    own, _ = generate_features(
        stats, conf, torch.full((n,), 1), 0.0, seeded_generators(0, 2)
    )
    torch.testing.assert_close(own.mean(0), stats.means[1], atol=0.02, rtol=0)
    # the same (seed, iteration, rank) draws the same; another one not
    again = generate_features(
        stats, conf, torch.full((n,), 4), 0.0, seeded_generators(0, 1)
    )[0]
    assert torch.equal(again, feats)
    other = generate_features(
        stats, conf, torch.full((n,), 4), 0.0, seeded_generators(0, 1, 1)
    )[0]
    assert not torch.equal(other, feats)


def test_anchor_positions_spread_evenly():
    sizes = torch.tensor([5, 8])
    gen = torch.Generator().manual_seed(0)
    classes = torch.tensor([0] * 3 + [1] * 16)
    pos = anchor_positions(classes, sizes, gen)
    assert len(set(pos[:3].tolist())) == 3 and pos[:3].max() < 5
    assert torch.equal(
        torch.bincount(pos[3:], minlength=8), torch.full((8,), 2)
    )


def test_early_checks_from_counts_alone():
    counts = [50, 40, 30, 5, 1]
    assert check_generation_setup(counts, 10, 3) == []
    with pytest.raises(ValueError, match='class 2 .*fewer than k=3 donors'):
        check_generation_setup(counts, 35, 3)
    with pytest.raises(ValueError, match='raise tail_threshold above 1'):
        check_generation_setup(counts, 1, 3)
    with pytest.raises(ValueError, match='n_max=40'):
        check_generation_setup(counts, 10, 3, n_max=40)
    (warning,) = check_generation_setup([50, 40, 30], 10, 1)
    assert 'no tail class' in warning and 'smallest 30' in warning


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


def test_sqrt_count_distance_weights_against_a_direct_computation():
    # the case: donors of 5,000 / 1,077 / 645 images at equal
    # distance get 0.74 / 0.16 / 0.10 linearly; sqrt(n) evens them out
    counts = torch.tensor([5000, 1077, 645, 20])
    means = torch.tensor([[3.0, 0], [0, 3.0], [-3.0, 0], [0, 0]])
    anchor = torch.zeros(1, 2)
    for weighting, size in (
        ('count_distance', lambda n: n),
        ('sqrt_count_distance', math.sqrt),
    ):
        donors, weights = support_sets(
            anchor, torch.tensor([3]), means, counts, 3, weighting
        )
        raw = [size(int(counts[d])) / 3.0 for d in donors[0].tolist()]
        want = [r / sum(raw) for r in raw]
        assert weights[0].tolist() == pytest.approx(want, rel=1e-6)
    assert sorted(weights[0].tolist(), reverse=True) == pytest.approx(
        [0.5485, 0.2545, 0.1970], abs=1e-4
    )
    # unequal distances: w_i proportional to sqrt(n_i) / ||x - mu_i||
    anchor = torch.tensor([[1.0, 0.5]])
    donors, weights = support_sets(
        anchor, torch.tensor([3]), means, counts, 3, 'sqrt_count_distance'
    )
    raw = [
        math.sqrt(int(counts[d])) / float((anchor[0] - means[d]).norm())
        for d in donors[0].tolist()
    ]
    assert weights[0].tolist() == pytest.approx(
        [r / sum(raw) for r in raw], rel=1e-6
    )


def test_smoothed_accuracy_is_a_moving_average():
    nan = float('nan')
    record = torch.tensor([0.5, nan, 0.2, 0.4])
    acc = torch.tensor([0.9, 0.7, nan, 0.0])
    got = smoothed_accuracy(record, acc, 0.75)
    # 0.75 * record + 0.25 * acc; no record yet: acc; no acc: the record
    want = [0.75 * 0.5 + 0.25 * 0.9, 0.7, 0.2, 0.75 * 0.4]
    assert got.tolist() == pytest.approx(want)
    assert torch.equal(smoothed_accuracy(record, acc, 0.0)[[0, 1, 3]],
                       acc[[0, 1, 3]])  # fmt: skip
    with pytest.raises(ValueError, match='below 1'):
        smoothed_accuracy(record, acc, 1.0)
    with pytest.raises(ValueError, match='smoothing'):
        smoothed_accuracy(record, acc, -0.1)


def test_kd_over_head_logits_and_an_adjusted_teacher():
    gen = torch.Generator().manual_seed(0)
    student = torch.randn(6, 4, generator=gen)
    teacher = torch.randn(6, 4, generator=gen)
    head = torch.tensor([True, True, False, True])
    t = 2.0
    got = distillation_loss(student, teacher, t, classes=head)
    # direct: the softmaxes over columns 0, 1, 3 only
    p_t = torch.softmax(teacher[:, head] / t, 1)
    log_s = torch.log_softmax(student[:, head] / t, 1)
    want = (p_t * (p_t.log() - log_s)).sum(1).mean() * t * t
    torch.testing.assert_close(got, want)
    # the tail column does not matter to it at all
    moved = student.clone()
    moved[:, 2] += 5.0
    torch.testing.assert_close(
        distillation_loss(moved, teacher, t, classes=head), got
    )
    with pytest.raises(ValueError, match='at least one class'):
        distillation_loss(student, teacher, classes=torch.zeros(4).bool())
    # z_t - tau log pi, and tau 0 leaves the logits as they are
    log_pi = torch.tensor([0.5, 0.3, 0.15, 0.05]).log()
    adjusted = adjusted_teacher_logits(teacher, log_pi, 1.5)
    torch.testing.assert_close(adjusted, teacher - 1.5 * log_pi)
    assert adjusted_teacher_logits(teacher, log_pi, 0.0) is teacher
    with pytest.raises(ValueError, match='teacher tau'):
        adjusted_teacher_logits(teacher, log_pi, -1.0)
