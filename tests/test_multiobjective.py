"""Multi-objective utilities against truth: hand-computed hypervolumes, brute-force
Pareto fronts, inclusion-exclusion, exact HVI of deterministic posteriors,
scipy closed forms and finite differences."""

import itertools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

import active_learning as al
import surrogates as sg
from active_learning import mo_acquisition
from active_learning import multiobjective as mo
from benchmarks import problems_mo


# ---------------------------------------------------------------------------
# Independent references


def _pareto_loop(Y):
    n = len(Y)
    keep = np.ones(n, bool)
    for i in range(n):
        for j in range(n):
            if np.all(Y[j] >= Y[i]) and np.any(Y[j] > Y[i]):
                keep[i] = False
    return keep


def _hv_inclusion_exclusion(Y, ref):
    """Volume of the union of boxes [ref, y] by inclusion-exclusion (2^n terms)."""
    Y = np.maximum(np.asarray(Y, float), ref)
    total = 0.0
    for r in range(1, len(Y) + 1):
        for S in itertools.combinations(range(len(Y)), r):
            total += (-1) ** (r + 1) * np.prod(Y[list(S)].min(axis=0) - ref)
    return total


class KnownGaussian(eqx.Module):
    """A Gaussian process with a known mean function and no data (prior = posterior),
    following the surrogate protocol; sigma (an array, so that models of any sigma
    share compiled programs) sets its uncertainty."""

    sigma: jax.Array = eqx.field(converter=jnp.asarray)
    lengthscale: float = 0.3

    def mean(self, X):
        x0, x1 = X[:, 0], X[:, 1]
        return jnp.stack([jnp.sin(3.0 * x0) + x1, jnp.cos(2.0 * x1) - x0**2,
                          x0 * x1 + 0.5 * x0], axis=-1)

    def posterior(self, X, full_cov=False):
        X = jnp.atleast_2d(X)
        mean = self.mean(X)
        q, m = mean.shape
        var = jnp.full((q, m), self.sigma**2)
        if not full_cov:
            return sg.Posterior(mean=mean, variance=var)
        sq = jnp.sum((X[:, None] - X[None]) ** 2, axis=-1)
        K = self.sigma**2 * jnp.exp(-0.5 * sq / self.lengthscale**2)
        return sg.Posterior(mean=mean, variance=var, covariance=jnp.broadcast_to(K, (m, q, q)))


@eqx.filter_jit
def _evaluate(acq, X):
    """Values (b,) and the gradient of their sum, compiled as the optimiser runs them.

    Acquisition tests share this one function and (4, 2, 2) batches, so that
    acquisitions of the same kind share one compiled program.
    """
    (_, values), grad = jax.value_and_grad(lambda x: (jnp.sum(v := acq(x)), v),
                                           has_aux=True)(X)
    return values, grad


_values = eqx.filter_jit(lambda acq, X: acq(X))
# Joint posterior samples as the acquisitions draw them (num_samples is static).
_samples = eqx.filter_jit(lambda model, X, key, s: model.posterior(X, full_cov=True).sample(key, s))


# ---------------------------------------------------------------------------
# Pareto fronts


def test_pareto_mask_matches_brute_force_with_duplicates_and_padding():
    rng = np.random.default_rng(0)
    Y = np.round(rng.uniform(size=(40, 3)), 1)  # coarse grid: many ties and duplicates
    Y[5] = Y[7]
    expected = _pareto_loop(Y)
    np.testing.assert_array_equal(np.asarray(mo.pareto_mask(Y)), expected)
    # Duplicates: all copies kept by default, the first with deduplicate=True.
    dedup = np.asarray(mo.pareto_mask(Y, deduplicate=True))
    for i in np.flatnonzero(expected):
        first = min(j for j in np.flatnonzero(expected) if np.all(Y[j] == Y[i]))
        assert dedup[i] == (i == first)
    # Padded rows (even ones that would dominate) neither dominate nor count.
    padded = np.concatenate([Y, np.full((8, 3), 9.0)])
    mask = np.r_[np.ones(40, bool), np.zeros(8, bool)]
    got = np.asarray(mo.pareto_mask(padded, mask))
    np.testing.assert_array_equal(got, np.r_[expected, np.zeros(8, bool)])


# ---------------------------------------------------------------------------
# Hypervolume


HAND = [
    # 2-D staircase: boxes 3x1 + 2x2 + 1x3 overlapping -> 1*3 + 1*2 + 1*1 = 6
    (np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]]), np.zeros(2), 6.0),
    # a dominated point, a duplicate and a point below ref add nothing
    (np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0], [1.0, 1.0], [2.0, 2.0], [5.0, -1.0]]),
     np.zeros(2), 6.0),
    # ref not at the origin: [(2,3),(4,1)] vs ref (1, 0): 1*3 + 2*1 = 5
    (np.array([[2.0, 3.0], [4.0, 1.0]]), np.array([1.0, 0.0]), 5.0),
    # point exactly on ref in one objective: zero volume
    (np.array([[0.0, 5.0]]), np.zeros(2), 0.0),
    # 3-D: unit cube corner boxes (1,1,2),(2,1,1),(1,2,1): 3 * 2 - 3 * 1 + 1 = 4
    (np.array([[1.0, 1.0, 2.0], [2.0, 1.0, 1.0], [1.0, 2.0, 1.0]]), np.zeros(3), 4.0),
    # 3-D: one box 2x3x4 plus a dominated and a duplicate point
    (np.array([[2.0, 3.0, 4.0], [1.0, 1.0, 1.0], [2.0, 3.0, 4.0]]), np.zeros(3), 24.0),
    # 3-D with ref (1,1,1): (3,2,2) and (2,3,2): 2*1*1 + 1*2*1 - 1*1*1 = 3
    (np.array([[3.0, 2.0, 2.0], [2.0, 3.0, 2.0]]), np.ones(3), 3.0),
]


@pytest.mark.parametrize("Y, ref, expected", HAND)
def test_hypervolume_of_hand_computed_fronts(Y, ref, expected):
    assert mo.hypervolume(Y, ref) == pytest.approx(expected, abs=1e-12)
    assert mo.hypervolume_exact(Y, ref) == pytest.approx(expected, abs=1e-12)
    assert float(mo.hypervolume_jax(Y, ref)) == pytest.approx(expected, abs=1e-12)


def test_reference_point_is_a_tenth_of_the_range_below_the_worst_score():
    # Every row counts, the dominated (0.5, 0.5) too: lo (0.5, 0.5), hi (3, 4).
    Y = np.array([[1.0, 4.0], [2.0, 2.0], [3.0, 1.0], [0.5, 0.5]])
    np.testing.assert_allclose(al.reference_point(Y), [0.5 - 0.25, 0.5 - 0.35], rtol=1e-15)
    assert al.REFERENCE_MARGIN == 0.1
    np.testing.assert_allclose(al.reference_point(Y, margin=0.0), [0.5, 0.5])
    # A given reference wins; one row (no range) sits just below it; none: NaN.
    np.testing.assert_array_equal(al.reference_point(Y, [0.0, -1.0]), [0.0, -1.0])
    one = al.reference_point(Y[:1])
    assert np.all(one < Y[0]) and np.allclose(one, Y[0], atol=1e-9)
    assert np.isnan(al.reference_point(np.zeros((0, 2)))).all()
    with pytest.raises(ValueError, match=r"ref has shape \(3,\); expected \(2,\)"):
        al.reference_point(Y, [0.0, 0.0, 0.0])


@pytest.mark.parametrize("m", [2, 3, 4])
def test_exact_hypervolume_equals_inclusion_exclusion_on_random_points(m):
    rng = np.random.default_rng(m)
    ref = np.full(m, 0.2)
    for n in (1, 4, 9):
        Y = rng.uniform(size=(n, m))
        expected = _hv_inclusion_exclusion(Y, ref)
        assert mo.hypervolume_exact(Y, ref) == pytest.approx(expected, rel=1e-12, abs=1e-14)
        if m <= 3:
            assert float(mo.hypervolume_jax(Y, ref)) == pytest.approx(expected, rel=1e-12)


def test_exact_hypervolume_agrees_with_grid_count():
    rng = np.random.default_rng(1)
    Y = rng.uniform(size=(30, 3))
    g = (np.arange(80) + 0.5) / 80  # cell centres of an 80^3 grid on [0, 1]^3
    G = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    covered = np.zeros(len(G), bool)
    for y in Y:
        covered |= np.all(G <= y, axis=1)
    assert mo.hypervolume(Y, np.zeros(3)) == pytest.approx(covered.mean(), abs=0.01)


def test_padded_hypervolume_matches_unpadded():
    rng = np.random.default_rng(2)
    for m in (2, 3):
        Y = rng.uniform(size=(7, m))
        padded = np.concatenate([Y, rng.uniform(1.0, 2.0, size=(5, m))])
        mask = np.r_[np.ones(7, bool), np.zeros(5, bool)]
        got = float(mo.hypervolume_jax(padded, np.zeros(m), mask))
        assert got == pytest.approx(mo.hypervolume_exact(Y, np.zeros(m)), rel=1e-12)


def test_hypervolume_jax_gradient_matches_finite_differences():
    rng = np.random.default_rng(3)
    Y = jnp.asarray(rng.uniform(size=(6, 3)))
    ref = jnp.zeros(3)
    g = np.asarray(jax.grad(mo.hypervolume_jax)(Y, ref))
    h = 1e-6
    for i, k in [(0, 0), (2, 1), (5, 2), (3, 0)]:
        e = jnp.zeros_like(Y).at[i, k].set(h)
        fd = (mo.hypervolume_exact(Y + e, ref) - mo.hypervolume_exact(Y - e, ref)) / (2 * h)
        assert g[i, k] == pytest.approx(fd, abs=1e-7)


def test_monte_carlo_hypervolume_is_honest():
    rng = np.random.default_rng(4)
    Y = rng.uniform(size=(12, 4))
    ref = np.zeros(4)
    exact = mo.hypervolume_exact(Y, ref)
    assert exact == pytest.approx(_hv_inclusion_exclusion(Y, ref), rel=1e-12)
    inside = 0
    for seed in range(10):
        est, se = mo.hypervolume_monte_carlo(Y, ref, jax.random.key(seed), num_samples=20480)
        assert 0 < float(se) < 0.02 * exact
        inside += abs(float(est) - exact) < 4 * float(se)
    assert inside >= 9  # 4 sigma: a miss has probability ~6e-5 each
    assert mo.hypervolume(Y, ref, key=jax.random.key(0), num_samples=20480) == pytest.approx(
        exact, rel=0.05)
    with pytest.raises(ValueError, match="key="):
        mo.hypervolume(Y, ref)


# ---------------------------------------------------------------------------
# Box decompositions


@pytest.mark.parametrize("m", [2, 3])
def test_boxes_partition_the_dominated_and_non_dominated_regions(m):
    rng = np.random.default_rng(5 + m)
    ref = np.full(m, 0.1)
    Y = rng.uniform(size=(9, m))
    Y[3] = Y[1]  # a duplicate
    Y[4] = Y[0] * 0.5  # a dominated point
    Y[6, 0] = 0.0  # below ref in one objective
    hv = mo.hypervolume_exact(Y, ref)
    lower, upper = (np.asarray(a) for a in mo.dominated_boxes(Y, ref))
    assert lower.shape == ((9, m) if m == 2 else (81, m))
    assert np.all(upper >= lower)
    assert np.sum(np.prod(upper - lower, axis=1)) == pytest.approx(hv, rel=1e-12)
    # Within the bounding box [ref, top], cells fill exactly what is not dominated.
    top = np.full(m, 1.5)
    cl, cu = (np.asarray(a) for a in mo.nondominated_cells(Y, ref))
    assert cl.shape == ((10, m) if m == 2 else (91, m))
    cells = np.prod(np.clip(np.minimum(cu, top) - cl, 0, None), axis=1).sum()
    assert cells == pytest.approx(np.prod(top - ref) - hv, rel=1e-12)
    # Disjointness: random points lie in exactly one box or cell.
    Z = rng.uniform(ref, top, size=(4000, m))
    in_box = np.all((Z[:, None] > lower) & (Z[:, None] < upper), axis=-1).sum(1)
    in_cell = np.all((Z[:, None] > cl) & (Z[:, None] < cu), axis=-1).sum(1)
    np.testing.assert_array_equal(in_box + in_cell, 1)


@pytest.mark.parametrize("m", [2, 3])
def test_hypervolume_improvement_from_cells_is_exact(m):
    rng = np.random.default_rng(10 + m)
    ref = np.zeros(m)
    Y = rng.uniform(size=(8, m))
    cl, cu = mo.nondominated_cells(Y, ref)
    base = mo.hypervolume_exact(Y, ref)
    for q in (1, 2, 3):
        new = rng.uniform(0.2, 1.1, size=(q, m))
        expected = mo.hypervolume_exact(np.concatenate([Y, new]), ref) - base
        assert float(mo.hypervolume_improvement(new, cl, cu)) == pytest.approx(
            expected, abs=1e-12)


# ---------------------------------------------------------------------------
# Acquisitions


@pytest.fixture(scope="module")
def front():
    rng = np.random.default_rng(20)
    X = rng.uniform(size=(8, 2))
    return X, np.asarray(KnownGaussian(0.0).mean(jnp.asarray(X)))


# Candidates that improve on the front's means for m = 2 and 3. A pair (a, a)
# has the HVI of a alone (a + a - a by inclusion-exclusion), so one (4, 2, 2)
# batch checks single points and a true pair in one compiled program.
A, B, C = [0.5, 0.1], [0.3, 0.6], [0.6, 0.4]
BATCH = jnp.asarray([[A, A], [B, B], [C, C], [A, B]])
TIGHT = dict(tau_relu=1e-10, tau_max=1e-7)  # smoothing negligible: exact values


def _log_exact_hvi(model, X_new, Y, ref):
    m = len(ref)
    cl, cu = mo.nondominated_cells(Y[:, :m], ref)
    return math.log(float(mo.hypervolume_improvement(model.mean(X_new)[:, :m], cl, cu)))


def test_qlogehvi_without_uncertainty_is_log_exact_hvi(front):
    # m = 3 (the m = 2 cells are exercised by the qLogNEHVI tests below).
    X, Y = front
    m = 3
    model = KnownGaussian(1e-7)
    ref = np.asarray(mo.reference_point(Y[:, :m]))
    objectives = mo.Objectives(outputs=tuple(range(m)))
    expected = [_log_exact_hvi(model, pair, Y, ref) for pair in BATCH]
    tight = mo.qLogExpectedHypervolumeImprovement(
        model, Y[:, :m], ref, jax.random.key(0), objectives=objectives, num_samples=16, **TIGHT)
    np.testing.assert_allclose(np.asarray(_evaluate(tight, BATCH)[0]), expected, atol=1e-5)
    # Default temperatures: a few per cent (soft minima cost up to tau_max log 2 a side).
    smooth = mo.qLogExpectedHypervolumeImprovement(
        model, Y[:, :m], ref, jax.random.key(0), objectives=objectives, num_samples=16)
    np.testing.assert_allclose(np.asarray(_evaluate(smooth, BATCH)[0]), expected, atol=0.05)


def _nehvi(model, X_baseline, mask, ref, **kwargs):
    return mo.qLogNoisyExpectedHypervolumeImprovement(
        model, X_baseline, ref, jax.random.key(0), baseline_mask=mask,
        objectives=mo.Objectives(outputs=(0, 1)), num_samples=16, **kwargs)


def test_qlognehvi_without_uncertainty_is_log_exact_hvi(front):
    X, Y = front
    model = KnownGaussian(1e-7)
    ref = np.asarray(mo.reference_point(Y[:, :2]))
    # Padded baseline (13 rows, 8 observed): the padding must not count.
    Xp = np.concatenate([X, np.full((5, 2), 0.5)])
    mask = np.arange(13) < 8
    acq = _nehvi(model, Xp, mask, ref, **TIGHT)
    expected = [_log_exact_hvi(model, pair, Y, ref) for pair in BATCH]
    np.testing.assert_allclose(np.asarray(_evaluate(acq, BATCH)[0]), expected, atol=1e-5)
    # A pending point joins the baseline (12 + 1 rows): its improvement no longer counts.
    pending = _nehvi(model, Xp[:12], mask[:12], ref, X_pending=jnp.asarray([A]), **TIGHT)
    Y_pending = np.concatenate([Y, np.asarray(model.mean(jnp.asarray([A])))])
    got = np.asarray(_evaluate(pending, BATCH)[0])
    assert got[1] == pytest.approx(_log_exact_hvi(model, BATCH[1], Y_pending, ref), abs=1e-5)
    assert got[0] < expected[0] - 10  # A itself: only the smoothing's tail remains


def test_smoothed_hvi_of_one_point_matches_the_general_inclusion_exclusion():
    """q = 1 takes a closed-form soft minimum; a zero log feasibility weight sends the same
    point through the general logsumexp path: values and gradients agree, with empty
    cells, unbounded cells and points below, inside and above the cells."""
    rng = np.random.default_rng(7)
    lower = rng.uniform(0.0, 1.0, size=(12, 2))
    upper = lower + rng.uniform(0.0, 0.5, size=(12, 2))
    upper[3] = lower[3]  # empty
    upper[5, 0] = 1e12  # unbounded, as the outermost cells
    lower, upper = jnp.asarray(lower), jnp.asarray(upper)
    tau_relu, tau_max = jnp.asarray(1e-3), jnp.asarray(1e-2)

    def fast(y):
        return mo_acquisition.log_hvi_smooth(y[None], lower, upper, None, tau_relu, tau_max)

    def general(y):
        return mo_acquisition.log_hvi_smooth(y[None], lower, upper, jnp.zeros(1), tau_relu, tau_max)

    for y in rng.uniform(-0.5, 2.0, size=(20, 2)):
        y = jnp.asarray(y)
        assert float(fast(y)) == pytest.approx(float(general(y)), rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(jax.grad(fast)(y), jax.grad(general)(y), rtol=1e-9,
                                   atol=1e-12)


def test_qlognehvi_trims_only_empty_cells():
    """40 noisy baseline points leave 41 cells per sample, most of them empty (where
    x0 > 0.6 and x1 ~ 0.5, both objectives fall with x0: small sampled fronts); the
    trimmed decomposition (a power of two >= MIN_CELLS) gives the same values."""
    rng = np.random.default_rng(5)
    X = np.column_stack([rng.uniform(0.6, 1.0, 40), rng.uniform(0.45, 0.55, 40)])
    model = KnownGaussian(0.05)
    F = np.asarray(model.mean(jnp.asarray(X)))[:, :2]
    ref = mo.reference_point(F[mo.pareto_mask_np(F)])  # below the front, above the cloud
    mask = np.ones(40, bool)
    trimmed = _nehvi(model, X, mask, ref)
    assert mo_acquisition.MIN_CELLS <= trimmed.cell_lower.shape[1] < 41
    full = _nehvi(model, X, mask, ref, min_cells=41)  # keep every cell
    assert full.cell_lower.shape[1] == 41
    for batch in (BATCH[:, :1], BATCH):
        np.testing.assert_allclose(_values(trimmed, batch), _values(full, batch),
                                   rtol=1e-12, atol=1e-12)


def test_qlognehvi_equals_log_of_exact_mc_average_on_a_gp():
    rng = np.random.default_rng(21)
    X = rng.uniform(size=(10, 2))
    Y = np.asarray(KnownGaussian(0.0).mean(jnp.asarray(X)))[:, :2]
    Y = Y + 0.05 * rng.normal(size=Y.shape)
    theta = sg.GPHyperparameters(
        log_lengthscale=np.log(np.full((2, 2), 0.4)), log_variance=np.zeros(2),
        log_noise=np.log(np.full(2, 0.01)), mean=np.zeros(2))
    gp = sg.gp_from_hyperparameters(X, Y, theta, bounds=(np.zeros(2), np.ones(2)))
    ref = np.asarray(mo.reference_point(Y))
    key = jax.random.key(3)
    acq = mo.qLogNoisyExpectedHypervolumeImprovement(gp, X, ref, key, num_samples=16, **TIGHT)
    # The same joint samples by hand: the base samples of the baseline (key) and of
    # the pair (key folded with 1) through numpy's Cholesky factor of the whole joint,
    # then per sample the exact HVI of the pair over the sampled baseline's front.
    pair = BATCH[3]
    post = gp.posterior(jnp.concatenate([jnp.asarray(X), pair]), full_cov=True)
    z = np.concatenate([np.asarray(jax.random.normal(key, (16, 2, 10))),
                        np.asarray(jax.random.normal(jax.random.fold_in(key, 1), (16, 2, 2)))],
                       axis=-1)
    cov = np.asarray(post.covariance)
    L = np.linalg.cholesky(cov + 1e-9 * np.eye(12) * np.max(np.asarray(post.variance), axis=0)
                           [:, None, None])
    samples = np.asarray(post.mean)[None] + np.einsum("mij,smj->sim", L, z)
    hvi = [float(mo.hypervolume_improvement(s[10:], *mo.nondominated_cells(s[:10], ref)))
           for s in samples]
    assert np.mean(hvi) > 0
    value = _values(acq, pair[None])[0]
    assert float(value) == pytest.approx(math.log(np.mean(hvi)), abs=1e-4)


def _check_gradient(acq, X, coords, rtol=1e-4):
    values, grad = _evaluate(acq, X)
    assert np.all(np.isfinite(np.asarray(values))) and np.all(np.isfinite(np.asarray(grad)))
    h = 1e-6
    for c in coords:
        e = jnp.zeros_like(X).at[c].set(h)
        fd = (float(jnp.sum(_evaluate(acq, X + e)[0]))
              - float(jnp.sum(_evaluate(acq, X - e)[0]))) / (2 * h)
        assert float(grad[c]) == pytest.approx(fd, rel=rtol, abs=1e-6)


# The last row is far from improving: the fat tail keeps value and gradient finite.
GRAD_BATCH = jnp.asarray([[A, B], [C, [0.4, 0.5]], [[0.5, 0.3], [0.3, 0.6]], [[0, 0], [0, 0.05]]])


def test_acquisition_gradients_match_finite_differences(front):
    X, Y = front
    model = KnownGaussian(0.2)
    ref = np.asarray(mo.reference_point(Y))
    ehvi = mo.qLogExpectedHypervolumeImprovement(
        model, Y, ref, jax.random.key(1), objectives=mo.Objectives(outputs=(0, 1, 2)),
        num_samples=16)
    _check_gradient(ehvi, GRAD_BATCH, [(0, 0, 0), (2, 1, 1), (3, 1, 0)])
    nehvi = _nehvi(model, np.concatenate([X, np.full((5, 2), 0.5)]), np.arange(13) < 8, ref[:2])
    _check_gradient(nehvi, GRAD_BATCH, [(0, 0, 1), (2, 1, 0), (3, 0, 1)])


def test_chebyshev_scalarization_by_hand():
    w = jnp.asarray([0.3, 0.7])
    # z = Y (ideal 1, nadir 0): w (z - 1) = (-0.15, -0.14): min -0.15 + 0.05 * -0.29
    assert float(mo.chebyshev_scalarization(w, jnp.asarray([0.5, 0.8]), jnp.ones(2),
                                            jnp.zeros(2))) == pytest.approx(-0.1645)
    # Normalisation: ideal (10, 4), nadir (0, 2); y = (5, 3) -> z = (0.5, 0.5)
    # w (z - 1) = (-0.15, -0.35): min -0.35 + 0.1 * -0.5 = -0.4
    value = mo.chebyshev_scalarization(w, jnp.asarray([5.0, 3.0]), jnp.asarray([10.0, 4.0]),
                                       jnp.asarray([0.0, 2.0]), rho=0.1)
    assert float(value) == pytest.approx(-0.4)
    Y = jnp.asarray([[0.0, 2.0], [10.0, 3.0], [4.0, 4.0]])
    s = mo.ChebyshevScalarization.from_observations(w, Y)
    np.testing.assert_allclose(np.asarray(s.ideal), [10.0, 4.0])
    # (10, 3) -> z = (1, 0.5): w (z - 1) = (0, -0.35)
    assert float(s(Y)[1]) == pytest.approx(-0.35 + 0.05 * -0.35)
    W = np.asarray(mo.sample_simplex(jax.random.key(0), 3, (2000,)))
    assert W.shape == (2000, 3) and np.all(W >= 0) and np.allclose(W.sum(1), 1.0)
    # Flat Dirichlet(1, 1, 1): each weight is Beta(1, 2), mean 1/3, P(w < 1/2) = 3/4.
    assert np.allclose(W.mean(0), 1 / 3, atol=0.02)
    assert np.allclose((W < 0.5).mean(0), 0.75, atol=0.03)


def test_scalarized_log_ei_equals_log_of_mc_improvement(front):
    _, Y = front
    model = KnownGaussian(0.3)
    key = jax.random.key(2)
    # (b, s, q, m): the acquisition's base samples, drawn the same way
    samples = np.stack([np.asarray(_samples(model, x, key, 64)) for x in BATCH])
    scal = mo.ChebyshevScalarization.from_observations(jnp.asarray([0.2, 0.5, 0.3]), Y)
    best = float(jnp.max(scal(jnp.asarray(Y))))
    g = np.asarray(scal(jnp.asarray(samples)))
    expected = np.log(np.mean(np.max(np.maximum(g - best, 0.0), axis=2), axis=1))
    tight = mo.ScalarizedLogEI(model, scal, best, key, num_samples=64, **TIGHT)
    np.testing.assert_allclose(np.asarray(_evaluate(tight, BATCH)[0]), expected, atol=1e-5)
    _check_gradient(mo.ScalarizedLogEI(model, scal, best, key, num_samples=64), GRAD_BATCH,
                    [(0, 0, 0), (3, 1, 1)])
    # Targets: log EI of -(y - t)^2 over the same samples.
    t = -((samples[..., 1] - 0.4) ** 2)
    expected = np.log(np.mean(np.max(np.maximum(t + 0.05, 0.0), axis=2), axis=1))
    target = mo.ScalarizedLogEI(model, mo.TargetObjective(0.4, output=1), -0.05, key,
                                num_samples=64, **TIGHT)
    np.testing.assert_allclose(np.asarray(_evaluate(target, BATCH)[0]), expected, atol=1e-5)


def test_objectives_and_expected_target_objective():
    Y = jnp.asarray([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    obj = mo.Objectives(outputs=(2, 0, 1), signs=(1.0, -1.0, 1.0), targets=(None, None, 4.0))
    np.testing.assert_allclose(np.asarray(obj(Y)), [[3.0, -1.0, -4.0], [6.0, -4.0, -1.0]])
    # E[-(y - t)^2] by Monte Carlo against the closed form.
    z = np.random.default_rng(0).normal(size=400000)
    mc = np.mean(-((1.3 + 0.7 * z - 2.0) ** 2))
    assert float(mo.expected_target_objective(1.3, 0.49, 2.0)) == pytest.approx(mc, abs=0.01)
    assert float(mo.expected_target_objective(1.3, 0.49, 2.0)) == pytest.approx(-(0.49 + 0.49))


def test_log_probability_of_feasibility_and_weighting():
    model = KnownGaussian(0.3)
    cons = mo.OutcomeConstraints.from_tuples([(0, "<=", 0.8), (2, ">=", 0.1)])
    X = jnp.asarray([[0.2, 0.3], [0.7, 0.9], [0.0, 0.0]])
    post = model.posterior(X)
    mu = np.asarray(post.mean)
    expected = norm.logcdf((0.8 - mu[:, 0]) / 0.3) + norm.logcdf((mu[:, 2] - 0.1) / 0.3)
    np.testing.assert_allclose(np.asarray(mo.log_probability_of_feasibility(post, cons)),
                               expected, rtol=1e-12)
    # Far outside the feasible region it stays finite (log_ndtr, not log(ndtr)).
    far = mo.OutcomeConstraints.from_tuples([(0, ">=", 30.0)])
    value = float(mo.log_probability_of_feasibility(model.posterior(X[:1]), far)[0])
    assert value == pytest.approx(norm.logcdf((mu[0, 0] - 30.0) / 0.3), rel=1e-10)
    with pytest.raises(ValueError, match="operator"):
        mo.OutcomeConstraints.from_tuples([(0, "<", 1.0)])
    # Weighting adds log P(feasible) of every point of a batch to a log acquisition.
    log_ei = al.LogExpectedImprovement(model, jnp.asarray(1.0))
    weighted = mo.feasibility_weighted(log_ei, model, cons)
    np.testing.assert_allclose(np.asarray(_values(weighted, X)),
                               np.asarray(_values(log_ei, X)) + expected, rtol=1e-10)
    pairs = X[:2, None] * jnp.ones((1, 2, 1))
    pairs = pairs.at[:, 1].set(X[2])

    def pair_acquisition(Xb):
        return jnp.zeros(Xb.shape[0])

    np.testing.assert_allclose(
        np.asarray(_values(mo.FeasibilityWeighted(pair_acquisition, model, cons), pairs)),
        expected[:2] + expected[2], rtol=1e-10)


def test_nehvi_compiles_once_per_padded_baseline_size(front):
    X, _ = front
    model = KnownGaussian(0.2)
    traces = []

    @eqx.filter_jit
    def evaluate(acq, Xc):
        traces.append(1)
        return acq(Xc)

    for n in (5, 6, 8):  # a growing campaign padded to capacity 8, one point at a time
        mask = np.arange(8) < n
        acq = _nehvi(model, np.where(mask[:, None], X, 0.5), mask, jnp.asarray([-1.0, -1.0]))
        assert np.isfinite(float(evaluate(acq, jnp.asarray([[0.3, 0.4]]))[0]))
    assert len(traces) == 1


# ---------------------------------------------------------------------------
# Benchmark problems


def test_branin_currin_values_and_max_hypervolume():
    # Branin's global minimum 0.397887 at (pi, 2.275), i.e. x = ((pi + 5)/15, 2.275/15).
    x = np.array([[(math.pi + 5) / 15, 2.275 / 15]])
    assert problems_mo.branin_currin(x)[0, 0] == pytest.approx(0.397887, abs=1e-6)
    # Currin at (0.5, 0.5) by hand: (1 - e^-1) * 1868.5 / 159.5
    x = np.array([[0.5, 0.5]])
    assert problems_mo.branin_currin(x)[0, 1] == pytest.approx(
        (1 - math.exp(-1)) * 1868.5 / 159.5, rel=1e-12)
    # Currin's x1 -> 0 limit (factor 1): 60 / 20 at x0 = 0.
    assert problems_mo.branin_currin(np.zeros((1, 2)))[0, 1] == pytest.approx(3.0)
    # A grid's front approaches the documented maximum hypervolume from below.
    g = np.linspace(0, 1, 301)
    F = problems_mo.branin_currin(np.stack(np.meshgrid(g, g), -1).reshape(-1, 2))
    p = problems_mo.BRANIN_CURRIN
    hv = mo.hypervolume(-F, -np.asarray(p.ref_point))
    assert 0.98 * p.max_hypervolume < hv < p.max_hypervolume


def test_dtlz2_front_and_max_hypervolume():
    p = problems_mo.DTLZ2
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(200, 6))
    X[:, 2:] = 0.5  # on the Pareto front: the unit sphere
    F = problems_mo.dtlz2(X)
    np.testing.assert_allclose(np.sum(F**2, axis=1), 1.0, rtol=1e-12)
    off = problems_mo.dtlz2(np.full((1, 6), 0.5) + np.r_[0, 0, 0.3, 0, 0, 0])
    assert np.sum(off**2) == pytest.approx(1.09**2)
    g = np.linspace(0, 1, 41)
    A = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    front = problems_mo.dtlz2(np.concatenate([A, np.full((len(A), 4), 0.5)], axis=1))
    hv = mo.hypervolume(-front, -np.asarray(p.ref_point))
    assert 0.97 * p.max_hypervolume < hv < p.max_hypervolume
    assert p.max_hypervolume == pytest.approx(1.331 - math.pi / 6)


# ---------------------------------------------------------------------------
# Analytic log EHVI (independent objectives, one point)


def _ehvi(model, X, m, signs, ref, **kw):
    return mo.LogExpectedHypervolumeImprovement(model, X, ref, outputs=tuple(range(m)),
                                                signs=signs, **kw)


@pytest.mark.parametrize("signs", [(1.0, 1.0), (1.0, -1.0, 1.0)])
def test_log_ehvi_equals_the_log_of_a_monte_carlo_average(front, signs):
    X, _ = front
    m = len(signs)
    model = KnownGaussian(0.2)
    Yo = np.asarray(model.mean(jnp.asarray(X)))[:, :m] * np.asarray(signs)
    ref = np.asarray(mo.reference_point(Yo))
    acq = _ehvi(model, X, m, signs, ref)
    # Independent reference: 400,000 draws of the candidate's objectives, each
    # one's exact HVI over the cells of the front, averaged.
    lower, upper = (np.asarray(a) for a in mo.nondominated_cells(Yo, ref))
    upper = np.where(np.isinf(upper), 1e6, upper)
    rng = np.random.default_rng(5)
    for x in (A, B, C):
        mean = np.asarray(model.mean(jnp.asarray([x])))[0, :m] * np.asarray(signs)
        y = mean + 0.2 * rng.standard_normal((400_000, m))
        sides = np.clip(np.minimum(y[:, None, :], upper) - lower, 0.0, None)
        hvi = np.prod(sides, axis=-1).sum(axis=-1)
        expected = math.log(hvi.mean())
        error = hvi.std() / hvi.mean() / math.sqrt(len(hvi))  # relative MC error
        assert float(_values(acq, jnp.asarray([x]))[0]) == pytest.approx(
            expected, abs=4 * error + 1e-6)


def test_log_ehvi_without_uncertainty_is_log_exact_hvi_and_ignores_padding(front):
    X, Y = front
    model = KnownGaussian(1e-7)
    ref = np.asarray(mo.reference_point(Y[:, :2]))
    Xp = np.concatenate([X, np.full((5, 2), 0.5)])  # padding rows: not part of the front
    acq = _ehvi(model, Xp, 2, (1.0, 1.0), ref, baseline_mask=np.arange(13) < 8)
    for x in (A, B, C):
        assert float(_values(acq, jnp.asarray([x]))[0]) == pytest.approx(
            _log_exact_hvi(model, jnp.asarray([x]), Y, ref), abs=1e-6)


def test_log_ehvi_gradients_match_finite_differences_far_from_improving_too(front):
    X, Y = front
    model = KnownGaussian(0.05)
    ref = np.asarray(mo.reference_point(Y))
    acq = _ehvi(model, X, 3, (1.0, 1.0, 1.0), ref)
    pts = jnp.asarray([A, C, [0.0, 0.0], [0.02, 0.01]])  # the last two far below the front
    values = _values(acq, pts)
    assert np.all(np.isfinite(np.asarray(values))) and float(values[2]) < -10
    grad = jax.grad(lambda p: jnp.sum(acq(p)))(pts)
    h = 1e-6
    for i, j in [(0, 0), (1, 1), (2, 0), (3, 1)]:
        e = jnp.zeros_like(pts).at[i, j].set(h)
        fd = (float(jnp.sum(acq(pts + e))) - float(jnp.sum(acq(pts - e)))) / (2 * h)
        assert float(grad[i, j]) == pytest.approx(fd, rel=1e-4, abs=1e-6)
