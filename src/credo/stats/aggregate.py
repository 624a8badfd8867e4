"""Aggregate statistics for comparing RL methods over seeds and tasks.

Written from the definitions in Agarwal et al. (2021), "Deep Reinforcement
Learning at the Edge of the Statistical Precipice" (the rliable library) and
the MARL evaluation protocol of Gorsane et al. (2022) (marl-eval):

* the interquartile mean (IQM) as the point estimate: robust to outlying runs
  like the median, but less noisy because it averages half of the runs;
* stratified percentile-bootstrap confidence intervals: runs are resampled with
  replacement independently within each task, so every resample keeps the
  task mix of the experiment;
* the probability of improvement P(X > Y), averaged over tasks;
* bootstrap bands for learning curves;
* the optimality gap and performance profiles (run-score distributions).

Everything takes NumPy arrays (or anything ``np.asarray`` accepts) and returns
plain Python floats or NumPy arrays. Only NumPy is used, so the module imports
without SciPy; its IQM matches ``scipy.stats.trim_mean(x, 0.25)`` exactly.

Shapes used throughout:

* ``[n_runs]``: one task, one score per run (seed);
* ``[n_runs, n_tasks]``: several tasks, the same number of runs per task.

Bad input (wrong number of dimensions, empty arrays, NaN where none is allowed,
mismatched task counts) raises ``ValueError`` saying what was expected and what
was given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "aggregate_summary",
    "bootstrap_band",
    "iqm",
    "min_max_normalise",
    "optimality_gap",
    "performance_profile",
    "probability_of_improvement",
    "stratified_bootstrap_ci",
    "stratified_resample",
]

Seed = int | np.random.Generator | None

# Resamples are processed in chunks of about this many scores, so that the
# sorted copies the vectorised IQM needs stay small whatever n_boot is.
_CHUNK_ELEMENTS = 1 << 22


# --- validation helpers -------------------------------------------------------------


def _as_float_array(x: ArrayLike, name: str) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be numeric array-like, got {type(x).__name__}: {e}") from e
    return arr


def _check_no_nan(arr: np.ndarray, name: str) -> None:
    if np.isnan(arr).any():
        raise ValueError(
            f"{name} contains {int(np.isnan(arr).sum())} NaN value(s) (shape {arr.shape}); "
            "drop or impute missing runs first"
        )


def _as_runs_by_tasks(scores: ArrayLike, name: str = "scores") -> np.ndarray:
    """Validate ``[n_runs]`` or ``[n_runs, n_tasks]`` scores; return ``[n_runs, n_tasks]``."""
    arr = _as_float_array(scores, name)
    if arr.ndim == 1:
        arr = arr[:, None]
    elif arr.ndim != 2:
        raise ValueError(
            f"{name} must be 1-D [n_runs] or 2-D [n_runs, n_tasks], got {arr.ndim}-D array of shape {arr.shape}"
        )
    if arr.size == 0:
        raise ValueError(
            f"{name} must have at least one run and one task ([n_runs] or [n_runs, n_tasks] with "
            f"n_runs, n_tasks >= 1), got shape {np.shape(scores)}"
        )
    _check_no_nan(arr, name)
    return arr


def _check_boot_args(n_boot: int, confidence: float) -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not (0.0 < float(confidence) < 1.0):
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")


def _percentile_interval(samples: np.ndarray, confidence: float, axis: int = 0) -> tuple[Any, Any]:
    alpha = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(samples, [alpha, 100.0 - alpha], axis=axis)
    return low, high


# --- IQM ----------------------------------------------------------------------------


def _trim_mean_rows(rows: np.ndarray, proportion: float = 0.25) -> np.ndarray:
    """Trimmed mean of each row of a 2-D array, as ``scipy.stats.trim_mean(row, proportion)``.

    ``int(proportion * n)`` values are cut from each end of the sorted row
    (SciPy's rule) and the rest averaged. Rows are fully sorted (not partitioned)
    so that two rows holding the same multiset give bit-identical results; the
    bootstrap relies on that to collapse exactly when every resample is the data.
    """
    n = rows.shape[1]
    cut = int(proportion * n)
    return np.sort(rows, axis=1)[:, cut : n - cut].mean(axis=1)


def iqm(scores: ArrayLike) -> float:
    """Interquartile mean: the mean of the middle 50% of a 1-D array of scores.

    Defined exactly as ``scipy.stats.trim_mean(scores, 0.25)``, which is what
    rliable's aggregate IQM uses: with ``n`` scores, ``k = int(0.25 * n)``
    scores are dropped from each end of the sorted array and the remaining
    ``n - 2k`` are averaged. The IQM ignores the worst and best quarter of runs,
    so one diverged or lucky seed cannot move it, yet it averages many more runs
    than the median and so is less noisy.

    Small samples: ``k`` is rounded down, so for ``n < 4`` nothing is trimmed and
    the IQM is the plain mean (e.g. ``iqm([1, 2, 100]) == 34.33``); for
    ``4 <= n < 8`` one score is cut from each end; when ``n`` is not a multiple of
    4 slightly more than half of the scores are kept.

    Args:
        scores: ``[n]`` scores, ``n >= 1``, no NaN (infinities are allowed and
            are trimmed away if they fall in the outer quarters).

    Returns:
        The IQM as a Python float.

    Raises:
        ValueError: if ``scores`` is not 1-D, is empty or contains NaN.
    """
    arr = _as_float_array(scores, "scores")
    if arr.ndim != 1:
        raise ValueError(
            f"iqm expects a 1-D array of scores [n], got {arr.ndim}-D array of shape {arr.shape}; "
            "flatten it first (np.ravel) to pool runs and tasks"
        )
    if arr.size == 0:
        raise ValueError("iqm expects at least one score, got an empty array of shape (0,)")
    _check_no_nan(arr, "scores")
    return float(_trim_mean_rows(arr[None, :])[0])


def optimality_gap(scores: ArrayLike, gamma: float = 1.0) -> float:
    """Optimality gap: how far the scores fall short of a target, on average.

    ``mean(max(gamma - scores, 0))``, rliable's definition (Agarwal et al. 2021):
    scores above ``gamma`` count as reaching it, not as exceeding it, so one run
    far above the target cannot hide others below it. Lower is better; 0 means
    every run reached ``gamma``. Meant for normalised scores (``gamma = 1`` the
    reference score, see :func:`min_max_normalise`). As a ``statistic`` of
    :func:`stratified_bootstrap_ci` the default ``gamma`` is vectorised; a
    ``functools.partial`` with another ``gamma`` takes the slower generic path.

    Args:
        scores: ``[n]`` scores, ``n >= 1``, no NaN.
        gamma: the target score.

    Returns:
        The gap as a Python float (``>= 0``).

    Raises:
        ValueError: if ``scores`` is not 1-D, is empty or contains NaN.
    """
    arr = _as_float_array(scores, "scores")
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"optimality_gap expects a non-empty 1-D array of scores [n], got shape {arr.shape}")
    _check_no_nan(arr, "scores")
    return float(np.maximum(float(gamma) - arr, 0.0).mean())


# Statistics with a vectorised form over the rows of [n_boot, n] resamples.
_VECTORISED: dict[Callable[..., Any], Callable[[np.ndarray], np.ndarray]] = {
    iqm: _trim_mean_rows,
    np.mean: lambda rows: rows.mean(axis=1),
    np.median: lambda rows: np.median(rows, axis=1),
    optimality_gap: lambda rows: np.maximum(1.0 - rows, 0.0).mean(axis=1),
}


# --- stratified bootstrap -----------------------------------------------------------


def stratified_resample(scores: ArrayLike, n_boot: int = 2000, seed: Seed = 0) -> np.ndarray:
    """Stratified bootstrap resamples of ``[n_runs, n_tasks]`` scores.

    Within each task (column) the ``n_runs`` runs are drawn with replacement,
    independently of the other tasks, so resample ``b`` column ``t`` only ever
    contains values of column ``t``: tasks never mix and each task keeps its
    weight in any aggregate. This is the resampling that
    :func:`stratified_bootstrap_ci` uses, exposed for custom analyses.

    Args:
        scores: ``[n_runs]`` (one task) or ``[n_runs, n_tasks]``.
        n_boot: number of resamples.
        seed: seed or ``np.random.Generator``; the same seed gives the same resamples.

    Returns:
        ``[n_boot, n_runs, n_tasks]`` array (``n_tasks = 1`` for 1-D input).
    """
    _check_boot_args(n_boot, 0.5)
    arr = _as_runs_by_tasks(scores)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, arr.shape[0], size=(n_boot, *arr.shape))
    return np.take_along_axis(arr[None], idx, axis=1)


def stratified_bootstrap_ci(
    scores: ArrayLike,
    statistic: Callable[[np.ndarray], float] = iqm,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: Seed = 0,
) -> tuple[float, float, float]:
    """Point estimate and stratified percentile-bootstrap confidence interval.

    The point estimate is ``statistic`` applied to all scores pooled (runs x
    tasks flattened), as rliable's aggregate IQM does, so with several tasks
    the default gives the IQM over all runs of all tasks; normalise scores
    across tasks first (:func:`min_max_normalise`) if their scales differ.

    The interval comes from ``n_boot`` stratified resamples
    (:func:`stratified_resample`): runs are resampled with replacement within
    each task, the statistic is recomputed on each pooled resample, and the
    ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` percentiles of those
    values are the bounds. ``iqm``, ``np.mean`` and ``np.median`` are computed
    for all resamples at once; any other callable is called once per resample
    with the resampled ``[n_runs, n_tasks]`` matrix flattened in C order
    (run-major), which is slower.

    Small samples: with a single run every resample equals the data, so the
    interval collapses to the point estimate ``(p, p, p)``: one seed says
    nothing about seed-to-seed variability. With a handful of runs the
    percentile bootstrap under-covers (its intervals are too narrow); report
    the number of runs next to the interval. A percentile interval is not
    forced to contain the point estimate, though it does for any reasonable
    data.

    Args:
        scores: ``[n_runs]`` for one task or ``[n_runs, n_tasks]``; no NaN.
        statistic: maps a 1-D array of scores to a float; default :func:`iqm`.
        n_boot: number of bootstrap resamples.
        confidence: coverage of the interval, in ``(0, 1)``.
        seed: seed or ``np.random.Generator``; the same seed gives the same interval.

    Returns:
        ``(point, low, high)`` as Python floats.

    Raises:
        ValueError: on wrong dimensions, empty input, NaN, ``n_boot < 1`` or
            ``confidence`` outside ``(0, 1)``.
    """
    _check_boot_args(n_boot, confidence)
    arr = _as_runs_by_tasks(scores)
    n_runs, n_tasks = arr.shape
    point = float(statistic(arr.ravel()))
    if n_runs == 1:  # every resample is the data itself
        return point, point, point

    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n_runs, size=(n_boot, n_runs, n_tasks))
    fast = _VECTORISED.get(statistic)
    boot = np.empty(n_boot)
    chunk = max(1, _CHUNK_ELEMENTS // arr.size)
    for start in range(0, n_boot, chunk):
        stop = min(start + chunk, n_boot)
        rows = np.take_along_axis(arr[None], idx[start:stop], axis=1).reshape(stop - start, -1)
        if fast is not None:
            boot[start:stop] = fast(rows)
        else:
            boot[start:stop] = [float(statistic(row)) for row in rows]
    low, high = _percentile_interval(boot, confidence)
    return point, float(low), float(high)


# --- probability of improvement -----------------------------------------------------


def _pairwise_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``K[t, i, j] = 1`` if x[i, t] > y[j, t], 0.5 if equal, else 0; shape ``[n_tasks, n_x, n_y]``."""
    xt, yt = x.T[:, :, None], y.T[:, None, :]
    return (xt > yt).astype(np.float64) + 0.5 * (xt == yt)


def probability_of_improvement(
    x: ArrayLike,
    y: ArrayLike,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: Seed = 0,
) -> tuple[float, float, float]:
    """Probability that method X improves on method Y, with a stratified bootstrap CI.

    For each task, P(X_t > Y_t) is the probability that a randomly chosen run
    of X scores higher than a randomly chosen run of Y, ties counting one half:
    the Mann-Whitney U statistic divided by ``n_x * n_y``. The reported value is
    the average over tasks (Agarwal et al. 2021, rliable's
    ``probability_of_improvement``). 0.5 means no difference; it says how often
    X wins, not by how much.

    The interval resamples the runs of X and of Y with replacement,
    independently of each other and within each task, and takes percentiles of
    the recomputed probability. It is computed exactly for all resamples at
    once: a resample is a vector of counts of each original run, and its
    probability is ``c_x^T K c_y / (n_x n_y)`` with ``K`` the pairwise win
    matrix of the original runs. With one run of each the interval collapses.

    Args:
        x: ``[n_runs_x, n_tasks]`` scores of X (1-D means one task); no NaN.
        y: ``[n_runs_y, n_tasks]`` scores of Y; ``n_runs_y`` may differ from
            ``n_runs_x`` but the tasks must match (same columns, same order).
        n_boot: number of bootstrap resamples.
        confidence: coverage of the interval, in ``(0, 1)``.
        seed: seed or ``np.random.Generator``.

    Returns:
        ``(point, low, high)`` as Python floats in ``[0, 1]``.

    Raises:
        ValueError: on wrong dimensions, empty input, NaN or different task counts.
    """
    _check_boot_args(n_boot, confidence)
    xa = _as_runs_by_tasks(x, "x")
    ya = _as_runs_by_tasks(y, "y")
    if xa.shape[1] != ya.shape[1]:
        raise ValueError(
            "x and y must have the same number of tasks: expected x [n_runs_x, n_tasks] and "
            f"y [n_runs_y, n_tasks], got x of shape {np.shape(x)} ({xa.shape[1]} task(s)) and "
            f"y of shape {np.shape(y)} ({ya.shape[1]} task(s))"
        )
    (nx, n_tasks), ny = xa.shape, ya.shape[0]
    kernel = _pairwise_kernel(xa, ya)  # [n_tasks, nx, ny]
    point = float(kernel.mean(axis=(1, 2)).mean())
    if nx == 1 and ny == 1:
        return point, point, point

    rng = np.random.default_rng(seed)
    # Counts of each original run in each resample, per task: [n_tasks, n_boot, n].
    cx = rng.multinomial(nx, np.full(nx, 1.0 / nx), size=(n_tasks, n_boot)).astype(np.float64)
    cy = rng.multinomial(ny, np.full(ny, 1.0 / ny), size=(n_tasks, n_boot)).astype(np.float64)
    per_task = ((cx @ kernel) * cy).sum(axis=2) / (nx * ny)  # [n_tasks, n_boot]
    low, high = _percentile_interval(per_task.mean(axis=0), confidence)
    return point, float(low), float(high)


# --- normalisation ------------------------------------------------------------------


def min_max_normalise(scores: ArrayLike, low: ArrayLike, high: ArrayLike) -> np.ndarray:
    """Min-max normalise scores per task: ``(scores - low) / (high - low)``.

    Use it before aggregating over tasks whose returns have different scales,
    e.g. ``low`` = a random policy's score and ``high`` = the best known score,
    so that 0 means random and 1 means the reference on every task.

    Args:
        scores: any array whose last axis is the task axis, e.g. ``[n_runs, n_tasks]``
            (NaN passes through).
        low, high: scalars (one task, or the same bounds for all) or 1-D arrays of
            length ``n_tasks`` = ``scores.shape[-1]``; ``high > low`` everywhere.

    Returns:
        Float array of the shape of ``scores``.

    Raises:
        ValueError: if ``high <= low`` for some task, bounds are NaN, or the
            bounds' shapes do not match the task axis.
    """
    s = _as_float_array(scores, "scores")
    lo = _as_float_array(low, "low")
    hi = _as_float_array(high, "high")
    n_tasks = s.shape[-1] if s.ndim else 1
    for name, b in (("low", lo), ("high", hi)):
        if b.ndim > 1 or (b.ndim == 1 and b.shape[0] != n_tasks):
            raise ValueError(
                f"{name} must be a scalar or 1-D of length n_tasks = scores.shape[-1] = {n_tasks} "
                f"(scores shape {s.shape}), got shape {b.shape}"
            )
        if np.isnan(b).any():
            raise ValueError(f"{name} contains NaN: {b}")
    width = np.broadcast_to(hi - lo, (n_tasks,))
    bad = np.flatnonzero(~(width > 0))
    if bad.size:
        lo_b, hi_b = np.broadcast_to(lo, (n_tasks,)), np.broadcast_to(hi, (n_tasks,))
        pairs = ", ".join(f"task {t}: low={lo_b[t]:g}, high={hi_b[t]:g}" for t in bad[:5])
        raise ValueError(f"min_max_normalise needs high > low for every task; violated for {pairs}")
    return (s - lo) / (hi - lo)


# --- performance profiles -----------------------------------------------------------


def performance_profile(
    scores: ArrayLike,
    taus: ArrayLike,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: Seed = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Performance profile (run-score distribution) with a stratified bootstrap band.

    For each threshold ``tau``, the fraction of runs whose score exceeds it
    (strictly), averaged over tasks: rliable's ``run_score_distribution``
    (Agarwal et al. 2021, Fig. 3). A curve that lies above another everywhere
    is stochastically dominant. The band comes from stratified resamples
    (:func:`stratified_resample`: runs redrawn within each task); with one run
    it collapses onto the profile. Normalise scores across tasks first
    (:func:`min_max_normalise`) when their scales differ.

    Args:
        scores: ``[n_runs]`` (one task) or ``[n_runs, n_tasks]``; no NaN.
        taus: 1-D thresholds (any order).
        n_boot, confidence, seed: as in :func:`stratified_bootstrap_ci`.

    Returns:
        ``(profile, low, high)``, each a float array of shape ``[n_taus]`` in ``[0, 1]``.

    Raises:
        ValueError: on wrong dimensions, empty input, NaN, or ``taus`` not a
            non-empty 1-D array of finite values.
    """
    _check_boot_args(n_boot, confidence)
    arr = _as_runs_by_tasks(scores)
    t = _as_float_array(taus, "taus")
    if t.ndim != 1 or t.size == 0 or not np.isfinite(t).all():
        raise ValueError(f"taus must be a non-empty 1-D array of finite thresholds, got shape {t.shape}")
    n_runs, n_tasks = arr.shape

    def fraction_above(rows: np.ndarray) -> np.ndarray:  # rows [..., n_runs, n_tasks] -> [..., n_taus]
        srt = np.sort(rows, axis=-2)
        flat = srt.reshape(-1, n_runs, n_tasks)
        out = np.empty((flat.shape[0], t.size))
        for k in range(flat.shape[0]):
            below = np.stack([np.searchsorted(flat[k, :, j], t, side="right") for j in range(n_tasks)])
            out[k] = (1.0 - below / n_runs).mean(axis=0)
        return out.reshape(*rows.shape[:-2], t.size)

    profile = fraction_above(arr)
    if n_runs == 1:
        return profile, profile.copy(), profile.copy()
    boot = fraction_above(stratified_resample(arr, n_boot=n_boot, seed=seed))  # [n_boot, n_taus]
    low, high = _percentile_interval(boot, confidence)
    return profile, np.asarray(low, float), np.asarray(high, float)


# --- learning curves ----------------------------------------------------------------


def bootstrap_band(
    curves: ArrayLike,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: Seed = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean learning curve over seeds with a percentile-bootstrap band.

    At every point the band is the ``confidence`` percentile interval of the
    mean over seeds when whole seeds are resampled with replacement (the same
    resampled seeds at every point, so the band reflects seed-to-seed
    variability of entire curves).

    Missing values: a NaN means the seed has no value at that point (e.g. runs
    evaluated at different steps or stopped early). Means ignore NaNs per point
    (``nanmean``); a resample whose drawn seeds are all NaN at a point is left
    out of that point's percentiles; a point where every seed is NaN gives NaN
    in ``mean``, ``low`` and ``high``. With one seed (or one seed with a value
    at a point) the band collapses to the mean there; identical seeds give a
    band of exactly zero width.

    Args:
        curves: ``[n_seeds, n_points]``.
        n_boot: number of bootstrap resamples of the seeds.
        confidence: coverage of the band, in ``(0, 1)``.
        seed: seed or ``np.random.Generator``.

    Returns:
        ``(mean, low, high)``, each a float array of shape ``[n_points]``.

    Raises:
        ValueError: if ``curves`` is not 2-D or has no seeds or no points.
    """
    _check_boot_args(n_boot, confidence)
    c = _as_float_array(curves, "curves")
    if c.ndim != 2:
        raise ValueError(
            f"curves must be 2-D [n_seeds, n_points], got {c.ndim}-D array of shape {c.shape}"
            + ("; use curves[None] for a single seed" if c.ndim == 1 else "")
        )
    if c.size == 0:
        raise ValueError(
            f"curves must have at least one seed and one point [n_seeds, n_points], got {c.shape}"
        )
    n_seeds, n_points = c.shape
    valid = ~np.isnan(c)
    has_any = valid.any(axis=0)
    # Work with deviations from a per-point reference value (the first seed with a
    # value there): identical seeds then give exactly zero deviations and a band of
    # exactly zero width, and large offsets do not cost precision.
    ref = np.where(has_any, c[valid.argmax(axis=0), np.arange(n_points)], np.nan)
    dev = np.where(valid, c - ref, 0.0)
    cnt = valid.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = ref + dev.sum(axis=0) / cnt

    low = np.full(n_points, np.nan)
    high = np.full(n_points, np.nan)
    low[has_any] = high[has_any] = mean[has_any]
    if n_seeds > 1 and has_any.any():
        rng = np.random.default_rng(seed)
        counts = rng.multinomial(n_seeds, np.full(n_seeds, 1.0 / n_seeds), size=n_boot).astype(np.float64)
        boot_sum = counts @ dev  # [n_boot, n_points]
        boot_cnt = counts @ valid.astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            boot = np.where(boot_cnt > 0, boot_sum / boot_cnt, np.nan)
        cols = np.flatnonzero(has_any)
        alpha = 100.0 * (1.0 - confidence) / 2.0
        lo_hi = np.nanpercentile(boot[:, cols], [alpha, 100.0 - alpha], axis=0)
        low[cols] = ref[cols] + lo_hi[0]
        high[cols] = ref[cols] + lo_hi[1]
    return mean, low, high


# --- convenience --------------------------------------------------------------------


def aggregate_summary(
    final_scores_by_seed: Sequence[float] | np.ndarray,
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: Seed = 0,
) -> dict[str, Any]:
    """JSON-ready summary of one method's final scores on one task.

    Args:
        final_scores_by_seed: 1-D, one final score per seed; no NaN.
        n_boot, confidence, seed: passed to :func:`stratified_bootstrap_ci`
            (the key stays ``"iqm_ci95"`` whatever ``confidence`` is).

    Returns:
        ``{"per_seed": [...], "mean": m, "iqm": q, "iqm_ci95": [low, high],
        "n_seeds": n}`` with plain Python floats and int, so ``json.dumps``
        works. With fewer than 4 seeds the IQM is the mean (see :func:`iqm`);
        with one seed the interval is ``[score, score]``.

    Raises:
        ValueError: if the scores are not 1-D, are empty or contain NaN.
    """
    arr = _as_float_array(final_scores_by_seed, "final_scores_by_seed")
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(
            f"final_scores_by_seed must be a non-empty 1-D sequence [n_seeds], got shape {arr.shape}"
        )
    _check_no_nan(arr, "final_scores_by_seed")
    point, low, high = stratified_bootstrap_ci(arr, iqm, n_boot=n_boot, confidence=confidence, seed=seed)
    return {
        "per_seed": [float(v) for v in arr],
        "mean": float(arr.mean()),
        "iqm": point,
        "iqm_ci95": [low, high],
        "n_seeds": int(arr.size),
    }
