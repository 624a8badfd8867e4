"""credo.stats: IQM, stratified bootstrap CIs, probability of improvement, bands and plots."""

import json
import math
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from credo.stats import (
    aggregate_summary,
    bootstrap_band,
    iqm,
    min_max_normalise,
    optimality_gap,
    performance_profile,
    plot_bands,
    plot_learning_curves,
    probability_of_improvement,
    stratified_bootstrap_ci,
    stratified_resample,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


# --- IQM --------------------------------------------------------------------------


def test_iqm_hand_computed_values():
    assert iqm(np.arange(100)) == 49.5  # mean of 25..74
    assert iqm([1, 2, 3, 4]) == 2.5  # int(0.25 * 4) = 1 cut per end: mean of [2, 3]
    assert iqm([4, 1, 3, 2]) == 2.5  # order does not matter
    assert iqm([1, 1, 1, 1, 1000, -1000, 1, 1]) == 1.0  # outliers trimmed
    assert iqm([1, 2, 3, 4, 5, 6, 7, 100]) == pytest.approx(4.5)  # cut 2 per end: mean of 3..6


def test_iqm_fewer_than_four_values_is_the_mean():
    assert iqm([7.0]) == 7.0
    assert iqm([1.0, 3.0]) == 2.0
    assert iqm([1.0, 2.0, 100.0]) == pytest.approx(103.0 / 3)


def test_iqm_matches_scipy_trim_mean():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for n in [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 17, 40, 101]:
        x = rng.standard_cauchy(n)
        assert iqm(x) == pytest.approx(stats.trim_mean(x, 0.25), rel=1e-12, abs=1e-12)


def test_iqm_ignores_infinite_outliers_in_the_tails():
    assert iqm([-np.inf, 1, 2, 3, 4, 5, 6, np.inf]) == pytest.approx(3.5)


@settings(max_examples=100, deadline=None)
@given(hnp.arrays(np.float64, st.integers(1, 60), elements=finite))
def test_iqm_between_min_and_max_and_shift_equivariant(x):
    q = iqm(x)
    scale = max(1.0, float(np.abs(x).max()))
    assert x.min() - 1e-9 * scale <= q <= x.max() + 1e-9 * scale
    assert iqm(x + 10.0) == pytest.approx(q + 10.0, abs=1e-6 * scale)
    assert iqm(-x) == pytest.approx(-q, abs=1e-9 * scale)


# --- stratified bootstrap CI ------------------------------------------------------


def test_ci_contains_point_and_is_deterministic():
    x = np.random.default_rng(0).normal(size=(10, 3))
    point, low, high = stratified_bootstrap_ci(x)
    assert low < point < high
    assert point == iqm(x.ravel())  # aggregate IQM pools runs x tasks
    assert stratified_bootstrap_ci(x, seed=0) == (point, low, high)
    assert stratified_bootstrap_ci(x, seed=1) != (point, low, high)


def test_ci_narrows_with_more_runs():
    rng = np.random.default_rng(1)
    _, lo5, hi5 = stratified_bootstrap_ci(rng.normal(size=5))
    _, lo200, hi200 = stratified_bootstrap_ci(rng.normal(size=200))
    assert hi200 - lo200 < 0.5 * (hi5 - lo5)


def test_ci_single_run_collapses():
    assert stratified_bootstrap_ci([3.5]) == (3.5, 3.5, 3.5)
    assert stratified_bootstrap_ci([[1.0, 2.0, 6.0]]) == (3.0, 3.0, 3.0)  # 1 run, 3 tasks


def test_ci_constant_scores_collapse():
    point, low, high = stratified_bootstrap_ci(np.full((5, 2), 0.1))
    assert point == low == high == pytest.approx(0.1)  # exactly equal to each other


def test_ci_coverage_of_true_iqm():
    # Exponential(1): IQM = E[X | q25 < X < q75] = 2 * [(a + 1) e^-a - (b + 1) e^-b]
    a, b = -math.log(0.75), math.log(4.0)
    true_iqm = 2.0 * ((a + 1) * 0.75 - (b + 1) * 0.25)
    rng = np.random.default_rng(2)
    hits = 0
    n_exp = 200
    for i in range(n_exp):
        sample = rng.exponential(size=40)
        _, low, high = stratified_bootstrap_ci(sample, n_boot=1000, seed=i)
        hits += low <= true_iqm <= high
    assert 0.88 <= hits / n_exp <= 0.99


def test_ci_is_fast():
    x = np.random.default_rng(3).normal(size=(5, 3))
    t0 = time.perf_counter()
    stratified_bootstrap_ci(x, n_boot=2000)
    assert time.perf_counter() - t0 < 0.5


def test_vectorised_and_generic_statistic_agree():
    x = np.random.default_rng(4).normal(size=(7, 3))
    assert stratified_bootstrap_ci(x, iqm) == pytest.approx(stratified_bootstrap_ci(x, lambda v: iqm(v)))
    assert stratified_bootstrap_ci(x, np.mean) == pytest.approx(
        stratified_bootstrap_ci(x, lambda v: float(np.mean(v)))
    )
    assert stratified_bootstrap_ci(x, np.median) == pytest.approx(
        stratified_bootstrap_ci(x, lambda v: float(np.median(v)))
    )


def test_confidence_level_orders_intervals():
    x = np.random.default_rng(5).normal(size=(20, 2))
    _, lo50, hi50 = stratified_bootstrap_ci(x, confidence=0.5)
    _, lo99, hi99 = stratified_bootstrap_ci(x, confidence=0.99)
    assert lo99 < lo50 < hi50 < hi99


def _disjoint_tasks(n_runs=6, n_tasks=3, seed=0):
    """Task t's runs lie in [100 t, 100 t + 1)."""
    rng = np.random.default_rng(seed)
    return rng.random((n_runs, n_tasks)) + 100.0 * np.arange(n_tasks)


def test_stratified_resamples_never_mix_tasks():
    x = _disjoint_tasks()
    boot = stratified_resample(x, n_boot=500, seed=0)
    assert boot.shape == (500, 6, 3)
    for t in range(3):
        assert np.isin(boot[:, :, t], x[:, t]).all()  # only this task's runs
        means = boot[:, :, t].mean(axis=1)
        assert (means >= 100 * t).all() and (means < 100 * t + 1).all()
        # and they vary: runs are really resampled within the task
        assert means.std() > 0.05
        assert means.mean() == pytest.approx(x[:, t].mean(), abs=0.05)
    # every resample keeps one third of its scores in each task
    for b in boot[:50]:
        counts = np.bincount((b.ravel() // 100).astype(int), minlength=3)
        assert (counts == 6).all()


def test_ci_generic_statistic_sees_stratified_resamples():
    x = _disjoint_tasks()
    seen = []

    def per_task_spread(flat):
        runs_by_task = flat.reshape(-1, 3)  # documented: C-order flatten of [n_runs, n_tasks]
        seen.append(runs_by_task)
        return float(runs_by_task.mean())

    stratified_bootstrap_ci(x, per_task_spread, n_boot=200)
    for m in seen:
        for t in range(3):
            assert np.isin(m[:, t], x[:, t]).all()


@settings(max_examples=40, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        st.tuples(st.integers(1, 12), st.integers(1, 4)),
        elements=st.floats(-100, 100, allow_nan=False),
    )
)
def test_ci_property_ordered_and_within_data_range(x):
    point, low, high = stratified_bootstrap_ci(x, n_boot=300)
    eps = 1e-9
    assert low <= high + eps
    assert x.min() - eps <= low and high <= x.max() + eps
    assert x.min() - eps <= point <= x.max() + eps


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_ci_property_contains_point_for_continuous_data(data):
    n_runs = data.draw(st.integers(1, 30))
    n_tasks = data.draw(st.integers(1, 4))
    seed = data.draw(st.integers(0, 2**32 - 1))
    x = np.random.default_rng(seed).normal(size=(n_runs, n_tasks))
    point, low, high = stratified_bootstrap_ci(x, n_boot=500)
    assert low <= point <= high


# --- probability of improvement ---------------------------------------------------


def brute_force_poi(x, y):
    per_task = []
    for t in range(x.shape[1]):
        wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in x[:, t] for b in y[:, t])
        per_task.append(wins / (x.shape[0] * y.shape[0]))
    return float(np.mean(per_task))


def test_poi_extremes():
    x = np.arange(10.0).reshape(5, 2) + 100
    y = np.arange(12.0).reshape(6, 2)
    assert probability_of_improvement(x, y) == (1.0, 1.0, 1.0)
    assert probability_of_improvement(y, x) == (0.0, 0.0, 0.0)
    point, low, high = probability_of_improvement(y, y)
    assert point == 0.5 and low <= 0.5 <= high


def test_poi_matches_brute_force_and_mann_whitney():
    rng = np.random.default_rng(6)
    x = rng.integers(0, 5, size=(7, 3)).astype(float)  # plenty of ties
    y = rng.integers(0, 5, size=(9, 3)).astype(float)
    point, low, high = probability_of_improvement(x, y)
    assert point == pytest.approx(brute_force_poi(x, y))
    assert low <= point <= high
    assert probability_of_improvement(y, x)[0] == pytest.approx(1.0 - point)
    stats = pytest.importorskip("scipy.stats")
    u = [stats.mannwhitneyu(x[:, t], y[:, t]).statistic / (7 * 9) for t in range(3)]
    assert point == pytest.approx(np.mean(u))


def test_poi_one_dimensional_is_one_task():
    x, y = np.array([1.0, 3.0, 5.0]), np.array([2.0, 4.0])
    assert probability_of_improvement(x, y)[0] == pytest.approx(3 / 6)


def test_poi_bootstrap_matches_explicit_resampling():
    # The count-based bootstrap equals the pairwise win rate of explicit resamples.
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(6, 2)), rng.normal(size=(5, 2)) + 0.5
    _, low, high = probability_of_improvement(x, y, n_boot=4000, seed=3)
    explicit = []
    rs = np.random.default_rng(11)
    for _ in range(4000):
        xb = np.stack([x[rs.integers(0, 6, 6), t] for t in range(2)], axis=1)
        yb = np.stack([y[rs.integers(0, 5, 5), t] for t in range(2)], axis=1)
        explicit.append(brute_force_poi(xb, yb))
    e_low, e_high = np.percentile(explicit, [2.5, 97.5])
    assert low == pytest.approx(e_low, abs=0.04) and high == pytest.approx(e_high, abs=0.04)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_poi_property_brute_force_and_bounds(data):
    n_tasks = data.draw(st.integers(1, 3))
    elems = st.integers(-3, 3).map(float)
    x = data.draw(hnp.arrays(np.float64, (data.draw(st.integers(1, 6)), n_tasks), elements=elems))
    y = data.draw(hnp.arrays(np.float64, (data.draw(st.integers(1, 6)), n_tasks), elements=elems))
    point, low, high = probability_of_improvement(x, y, n_boot=200)
    assert point == pytest.approx(brute_force_poi(x, y))
    assert 0.0 <= low <= high <= 1.0


# --- normalisation ----------------------------------------------------------------


def test_min_max_normalise():
    s = np.array([[0.0, 10.0], [5.0, 20.0]])
    out = min_max_normalise(s, low=[0.0, 10.0], high=[10.0, 30.0])
    np.testing.assert_allclose(out, [[0.0, 0.0], [0.5, 0.5]])
    np.testing.assert_allclose(min_max_normalise([1.0, 2.0], 0.0, 4.0), [0.25, 0.5])
    assert np.isnan(min_max_normalise([np.nan, 1.0], 0.0, 1.0)[0])


def test_min_max_normalise_rejects_bad_bounds():
    with pytest.raises(ValueError, match=r"high > low.*task 1: low=5, high=5"):
        min_max_normalise(np.zeros((2, 2)), [0.0, 5.0], [1.0, 5.0])
    with pytest.raises(ValueError, match="high > low"):
        min_max_normalise([1.0], 2.0, 1.0)
    with pytest.raises(ValueError, match=r"length n_tasks .* = 2 .*got shape \(3,\)"):
        min_max_normalise(np.zeros((2, 2)), [0.0, 0.0, 0.0], 1.0)
    with pytest.raises(ValueError, match="NaN"):
        min_max_normalise([1.0], np.nan, 1.0)


# --- learning-curve bands ---------------------------------------------------------


def test_band_identical_seeds_have_zero_width():
    curve = np.linspace(0.1, 7.3, 50)
    mean, low, high = bootstrap_band(np.tile(curve, (5, 1)))
    np.testing.assert_array_equal(mean, curve)
    np.testing.assert_array_equal(low, curve)
    np.testing.assert_array_equal(high, curve)


def test_band_single_seed_collapses():
    curve = np.random.default_rng(8).normal(size=(1, 20))
    mean, low, high = bootstrap_band(curve)
    np.testing.assert_array_equal(mean, curve[0])
    np.testing.assert_array_equal(low, curve[0])
    np.testing.assert_array_equal(high, curve[0])


def test_band_contains_mean_and_is_deterministic():
    curves = np.random.default_rng(9).normal(size=(8, 30)).cumsum(axis=1)
    mean, low, high = bootstrap_band(curves)
    np.testing.assert_allclose(mean, curves.mean(axis=0))
    assert (low <= mean + 1e-12).all() and (mean <= high + 1e-12).all()
    assert (high - low > 0).all()
    for a, b in zip(bootstrap_band(curves), (mean, low, high)):
        np.testing.assert_array_equal(a, b)


def test_band_nan_handling():
    curves = np.array(
        [
            [1.0, 2.0, np.nan, np.nan],
            [3.0, np.nan, np.nan, 5.0],
            [5.0, 4.0, np.nan, np.nan],
        ]
    )
    mean, low, high = bootstrap_band(curves, n_boot=500)
    np.testing.assert_allclose(mean[:2], [3.0, 3.0])
    assert mean[3] == 5.0 and low[3] == 5.0 and high[3] == 5.0  # one seed: collapses
    assert np.isnan(mean[2]) and np.isnan(low[2]) and np.isnan(high[2])  # no seed
    assert 1.0 <= low[0] < 3.0 < high[0] <= 5.0
    assert 2.0 <= low[1] < 3.0 < high[1] <= 4.0


def test_band_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"2-D \[n_seeds, n_points\], got 1-D.*shape \(5,\).*curves\[None\]"):
        bootstrap_band(np.zeros(5))
    with pytest.raises(ValueError, match=r"at least one seed.*\(0, 4\)"):
        bootstrap_band(np.zeros((0, 4)))


# --- summary ----------------------------------------------------------------------


def test_aggregate_summary_is_json_ready():
    s = aggregate_summary([1, 2, 3, 4, 100])
    assert json.loads(json.dumps(s)) == s
    assert s["per_seed"] == [1.0, 2.0, 3.0, 4.0, 100.0]
    assert s["n_seeds"] == 5 and s["mean"] == 22.0 and s["iqm"] == 3.0
    low, high = s["iqm_ci95"]
    assert low <= 3.0 <= high
    assert all(type(v) is float for v in [s["mean"], s["iqm"], low, high, *s["per_seed"]])
    assert aggregate_summary([2.5])["iqm_ci95"] == [2.5, 2.5]


# --- plots ------------------------------------------------------------------------


@pytest.mark.parametrize("n_seeds", [1, 5])
def test_plot_writes_png(tmp_path, n_seeds):
    rng = np.random.default_rng(n_seeds)
    x = np.arange(0, 20_000, 1000)
    ys = rng.normal(size=(n_seeds, x.size)).cumsum(axis=1)
    ys_nan = ys + 1.0
    ys_nan[0, -3:] = np.nan  # a seed that stopped early
    path = tmp_path / "sub" / f"curves_{n_seeds}.png"
    out = plot_learning_curves({"qmix": (x, ys), "vdn": (x, ys_nan)}, path, title="test")
    assert out == path
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 1000


def test_plot_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="at least one label"):
        plot_learning_curves({}, tmp_path / "a.png")
    with pytest.raises(ValueError, match=r"x of shape \[n_points\].*got x \(3,\) and ys \(2, 4\)"):
        plot_learning_curves({"a": (np.arange(3), np.zeros((2, 4)))}, tmp_path / "a.png")


# --- optimality gap and performance profiles ----------------------------------------


def test_optimality_gap_hand_computed():
    assert optimality_gap([1.0, 1.0, 1.0]) == 0.0
    assert optimality_gap([0.0, 0.5, 2.0]) == pytest.approx((1.0 + 0.5 + 0.0) / 3)  # above 1 counts as 1
    assert optimality_gap([0.2, 0.4], gamma=0.5) == pytest.approx((0.3 + 0.1) / 2)
    with pytest.raises(ValueError, match="non-empty 1-D"):
        optimality_gap([])


def test_optimality_gap_ci_vectorised_matches_generic():
    x = np.random.default_rng(3).uniform(-0.5, 1.5, size=(7, 3))
    fast = stratified_bootstrap_ci(x, optimality_gap, n_boot=300, seed=1)
    slow = stratified_bootstrap_ci(x, lambda v: optimality_gap(v), n_boot=300, seed=1)
    assert fast == pytest.approx(slow)
    assert fast[0] == pytest.approx(np.maximum(1 - x, 0).mean())


def test_performance_profile_hand_computed_and_band():
    scores = np.array([[0.1, 0.0], [0.5, 1.0], [0.9, 1.0], [0.3, 0.2]])  # 4 runs, 2 tasks
    taus = np.array([-1.0, 0.0, 0.2, 0.5, 1.0])
    prof, low, high = performance_profile(scores, taus, n_boot=500, seed=0)
    # fraction of runs strictly above tau, per task, then averaged over tasks
    expected = [np.mean([(scores[:, t] > tau).mean() for t in range(2)]) for tau in taus]
    np.testing.assert_allclose(prof, expected)
    assert prof[0] == 1.0 and prof[-1] == 0.0
    assert np.all(low <= prof + 1e-12) and np.all(prof <= high + 1e-12)
    assert np.all(np.diff(prof) <= 0)  # a profile never rises with tau
    # the band is rliable's: stratified resamples of the runs
    boot = stratified_resample(scores, n_boot=500, seed=0)
    fr = np.array([[np.mean([(b[:, t] > tau).mean() for t in range(2)]) for tau in taus] for b in boot])
    np.testing.assert_allclose(low, np.percentile(fr, 2.5, axis=0))
    np.testing.assert_allclose(high, np.percentile(fr, 97.5, axis=0))
    one, lo1, hi1 = performance_profile([0.4], taus)
    np.testing.assert_array_equal(one, lo1) and np.testing.assert_array_equal(one, hi1)
    with pytest.raises(ValueError, match="taus"):
        performance_profile(scores, [])


def test_plot_bands_writes_png(tmp_path):
    x = np.linspace(0, 1, 11)
    panels = {
        "env a": {"qmix": (x, x, x - 0.1, x + 0.1), "vdn": (x[:5], x[:5], x[:5], x[:5])},
        "env b": {"qmix": (x, 1 - x, 0.9 - x, 1.1 - x)},
    }
    out = plot_bands(panels, tmp_path / "p" / "bands.png", "tau", "fraction", drawstyle="steps-post")
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    with pytest.raises(ValueError, match="1-D of one length"):
        plot_bands({"a": {"q": (x, x[:3], x, x)}}, tmp_path / "b.png", "x", "y")
    with pytest.raises(ValueError, match="at least one title"):
        plot_bands({}, tmp_path / "b.png", "x", "y")


# --- bad input --------------------------------------------------------------------


@pytest.mark.parametrize(
    "fn, args, pattern",
    [
        (iqm, ([],), "at least one score"),
        (iqm, (np.zeros((3, 2)),), r"1-D array of scores \[n\], got 2-D array of shape \(3, 2\)"),
        (iqm, ([1.0, np.nan],), "NaN"),
        (stratified_bootstrap_ci, (np.zeros((2, 2, 2)),), r"\[n_runs, n_tasks\], got 3-D.*\(2, 2, 2\)"),
        (stratified_bootstrap_ci, (np.zeros((0, 3)),), r"at least one run.*got shape \(0, 3\)"),
        (stratified_bootstrap_ci, ([],), r"at least one run.*got shape \(0,\)"),
        (stratified_bootstrap_ci, ([1.0, 2.0], iqm, 0), "n_boot must be a positive integer"),
        (stratified_bootstrap_ci, ([1.0, 2.0], iqm, 10, 1.5), "confidence"),
        (
            probability_of_improvement,
            (np.zeros((4, 3)), np.zeros((5, 2))),
            r"same number of tasks.*x of shape \(4, 3\) \(3 task\(s\)\).*y of shape \(5, 2\) \(2 task\(s\)\)",
        ),
        (probability_of_improvement, (np.zeros((4, 3)), np.zeros((0, 3))), r"y must have at least one run"),
        (probability_of_improvement, (np.zeros((2, 2, 2)), np.zeros((2, 2))), r"x must be 1-D.*3-D"),
        (aggregate_summary, (np.zeros((2, 2)),), r"1-D sequence \[n_seeds\], got shape \(2, 2\)"),
        (aggregate_summary, ([],), r"non-empty"),
    ],
)
def test_bad_inputs_raise_informative_errors(fn, args, pattern):
    with pytest.raises(ValueError, match=pattern):
        fn(*args)
