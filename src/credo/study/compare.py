"""credo compare: final scores, their uncertainty and pairwise verdicts over run directories.

Runs are grouped by label (:func:`credo.study.runs.assign_labels`) and env; runs of one label
on one env pool their seeds. A seed's final score is its last evaluation of the metric, or with
``step`` the first evaluation at or after that many env steps, so runs trained for different
budgets compare like for like. Per env and group: IQM, median, mean and optimality gap with 95%
stratified-bootstrap CIs (rliable, :mod:`credo.stats`); with several envs, the same over
per-env min-max normalised scores; the probability of improvement of every group over every
other (or over a baseline) with a verdict (:func:`verdict`); performance profiles and IQM
sample-efficiency curves as PNGs. :func:`compare` returns everything as a JSON-ready dict,
:func:`render_markdown` turns it into tables, :func:`write_outputs` writes
``compare.md``, ``compare.json``, ``performance_profiles.png`` and ``sample_efficiency.png``.

Both outputs say where their numbers come from (:func:`provenance`): when the comparison was
made and by which command, and per run its path, label, seeds, env steps trained, settings
(overrides) and, from its ``metadata.json``, the machine, credo version and commit and start
time. The Markdown names a machine shared by every run once at the top, and ends with a table
of the runs; the JSON holds each run's whole ``metadata.json``.

No JAX: ``credo compare`` starts in a second.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from credo.study.runs import CELL_FILE, Run, _flatten, _fmt_value, load_runs_or_fail, resolve_metric

__all__ = [
    "add_parsers",
    "cmd_compare",
    "compare",
    "provenance",
    "render_markdown",
    "verdict",
    "verdict_line",
    "write_outputs",
]

CONFIDENCE = 0.95
Note = Callable[[str], None]
NO_METADATA = "no metadata.json (run before credo recorded it)"
# metadata.json fields that describe the machine (a resume entry has all but cpu and cores).
MACHINE_FIELDS = ("cpu", "cores", "jax_backend", "device_kind", "device_count", "host")


# --- the verdict rule ---------------------------------------------------------------


def verdict(poi: float, lo: float, hi: float, n_seeds: int) -> str:
    """The verdict on "is A better than B", from P(A > B) and its 95% CI.

    The rule, used by every credo result writer:

    * ``"better"`` when the whole CI of P(A > B) lies above 0.5 (``lo > 0.5``);
    * ``"worse"`` when the whole CI lies below 0.5 (``hi < 0.5``);
    * otherwise ``"inconclusive at N seeds"``, with N = ``n_seeds``, the smaller of the
      two seed counts: the data cannot tell A from B at that many seeds.

    ``poi`` is the point estimate; it does not enter the rule (a CI touching 0.5 is
    inconclusive whatever the point says) but must lie in its interval's range [0, 1].
    With one seed per side the bootstrap CI collapses onto the point, so a single seed can
    never be conclusive: it is reported inconclusive.

    Args:
        poi: P(A > B), ties counting one half (:func:`credo.stats.probability_of_improvement`).
        lo, hi: the bounds of its confidence interval.
        n_seeds: the smaller seed count of A and B.

    Returns:
        ``"better"``, ``"worse"`` or ``"inconclusive at N seeds"``.
    """
    for name, v in (("poi", poi), ("lo", lo), ("hi", hi)):
        if not (0.0 <= float(v) <= 1.0):
            raise ValueError(f"{name} must be a probability in [0, 1], got {v!r}")
    if lo > hi:
        raise ValueError(f"the interval must have lo <= hi, got lo={lo!r}, hi={hi!r}")
    if n_seeds > 1:
        if lo > 0.5:
            return "better"
        if hi < 0.5:
            return "worse"
    return f"inconclusive at {int(n_seeds)} seed{'s' if n_seeds != 1 else ''}"


def verdict_line(a: str, b: str, poi: float, lo: float, hi: float, n_a: int, n_b: int) -> str:
    """One sentence for a pair, e.g. ``A better than B: P(A > B) = 0.94 [0.81, 1.00], 10 vs 10 seeds``."""
    v = verdict(poi, lo, hi, min(n_a, n_b))
    detail = f"P({a} > {b}) = {poi:.2f} [{lo:.2f}, {hi:.2f}], {n_a} vs {n_b} seeds"
    if v in ("better", "worse"):
        return f"{a} {v} than {b}: {detail}"
    return f"{a} vs {b}: {v} ({detail})"


# --- computation --------------------------------------------------------------------


def _ci(scores: np.ndarray, statistic, n_boot: int, seed: int) -> dict[str, float]:
    from credo import stats

    p, lo, hi = stats.stratified_bootstrap_ci(
        scores, statistic, n_boot=n_boot, confidence=CONFIDENCE, seed=seed
    )
    return {"point": p, "low": lo, "high": hi}


def _summaries(scores: np.ndarray, normalised: np.ndarray, n_boot: int, seed: int) -> dict[str, Any]:
    """IQM, median, mean of ``scores`` and optimality gap of ``normalised`` (same shape), with CIs."""
    from credo import stats

    return {
        "iqm": _ci(scores, stats.iqm, n_boot, seed),
        "median": _ci(scores, np.median, n_boot, seed),
        "mean": _ci(scores, np.mean, n_boot, seed),
        "optimality_gap": _ci(normalised, stats.optimality_gap, n_boot, seed),
    }


def _normalise(x: np.ndarray, low: float, high: float) -> np.ndarray:
    if high > low:
        return (np.asarray(x, float) - low) / (high - low)
    return np.ones_like(np.asarray(x, float))  # every run scored the same, so every run is the best


def _pairs(labels: list[str], baseline: str | None) -> list[tuple[str, str]]:
    if baseline is not None:
        return [(g, baseline) for g in labels if g != baseline]
    return [(a, b) for i, a in enumerate(labels) for b in labels[i + 1 :]]


def _poi_rows(
    scores: dict[str, np.ndarray], labels: list[str], baseline: str | None, n_boot: int, seed: int
) -> list[dict[str, Any]]:
    from credo import stats

    rows = []
    for a, b in _pairs(labels, baseline):
        x, y = scores[a], scores[b]
        p, lo, hi = stats.probability_of_improvement(x, y, n_boot=n_boot, confidence=CONFIDENCE, seed=seed)
        na, nb = int(x.shape[0]), int(y.shape[0])
        rows.append(
            {
                "a": a,
                "b": b,
                "poi": p,
                "low": lo,
                "high": hi,
                "n_seeds_a": na,
                "n_seeds_b": nb,
                "verdict": verdict(p, lo, hi, min(na, nb)),
                "line": verdict_line(a, b, p, lo, hi, na, nb),
            }
        )
    return rows


def _profiles(scores: dict, order: list[str], taus: np.ndarray, n_boot: int, seed: int) -> dict:
    """Each group's performance profile at ``taus`` with its stratified-bootstrap band."""
    from credo import stats

    out = {}
    for label in order:
        prof, lo, hi = stats.performance_profile(
            scores[label], taus, n_boot=n_boot, confidence=CONFIDENCE, seed=seed
        )
        out[label] = {"tau": taus.tolist(), "profile": prof.tolist(), "low": lo.tolist(), "high": hi.tolist()}
    return out


def _curve_grid(curves: list) -> np.ndarray:
    steps = sorted({int(s) for c in curves for s in c.steps})
    return np.array(steps, dtype=np.int64)


def _iqm_curve(curves: list, n_boot: int, seed: int) -> dict[str, list]:
    """IQM over seeds at every evaluation step, with a stratified-bootstrap CI.

    Seeds with the same number of evaluations are aligned by evaluation (at their mean env
    steps); otherwise a seed's value at step x is its latest evaluation at or before x (none
    after its last).
    """
    from credo import stats

    lengths = {c.steps.size for c in curves}
    if len(lengths) == 1 and 0 not in lengths:
        # Seeds on one evaluation schedule: the k-th evaluations belong together even where
        # episodes of varying length put them at slightly different env steps (a union of
        # their steps would drop seeds in and out near the end and make the IQM jump).
        grid = np.mean([c.steps for c in curves], 0).round().astype(np.int64)
        columns = [np.array([c.values[k] for c in curves], float) for k in range(grid.size)]
    else:
        grid, columns = _curve_grid(curves), []
        for x in grid:
            vals = []
            for c in curves:
                if c.steps.size and c.steps[0] <= x <= c.steps[-1]:
                    k = int(np.searchsorted(c.steps, x, side="right")) - 1
                    vals.append(c.values[k])
            columns.append(np.asarray(vals, float))
    pts, los, his, ns = [], [], [], []
    for v in columns:
        p, lo, hi = stats.stratified_bootstrap_ci(
            v, stats.iqm, n_boot=n_boot, confidence=CONFIDENCE, seed=seed
        )
        pts.append(p)
        los.append(lo)
        his.append(hi)
        ns.append(int(v.size))
    return {"steps": grid.tolist(), "iqm": pts, "low": los, "high": his, "n_seeds": ns}


def compare(
    runs: list[Run],
    metric: str = "test_return",
    *,
    step: int | None = None,
    baseline: str | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    note: Note | None = None,
    command: list[str] | None = None,
) -> dict[str, Any]:
    """Compares labelled runs; returns a JSON-ready dict (see the module docstring).

    ``command`` is the command line recorded in the result's ``provenance`` (default ``sys.argv``).

    Raises ValueError for an unknown metric (naming those present) or a baseline that is
    not a label (naming the labels).
    """

    notes: list[str] = []

    def tell(msg: str) -> None:
        notes.append(msg)
        if note:
            note(msg)

    if not runs:
        raise ValueError("no runs to compare")
    metric = resolve_metric(runs, metric)
    with_metric = [r for r in runs if metric in r.metrics]
    for r in runs:
        if r not in with_metric:
            tell(f"{r.path}: its evaluations have no {metric!r}; left out")
    labels_all = sorted({r.label for r in with_metric})
    if baseline is not None and baseline not in labels_all:
        raise ValueError(f"--baseline {baseline!r} is not among the labels: {', '.join(labels_all)}")

    envs = sorted({r.env for r in with_metric})
    # Final score of every seed, grouped by (env, label).
    groups: dict[str, dict[str, dict[str, Any]]] = {e: {} for e in envs}
    for r in with_metric:
        g = groups[r.env].setdefault(r.label, {"runs": [], "seeds": [], "curves": []})
        g["runs"].append(r)
        for c in r.curves(metric):
            final = c.at(step)
            if final is None:
                last = int(c.steps[-1]) if c.steps.size else 0
                tell(
                    f"{r.path}: seed {c.seed} has no evaluation at or after {step:,} env steps "
                    f"(last at {last:,}); left out"
                    if step is not None
                    else f"{r.path}: seed {c.seed} has no evaluation of {metric}; left out"
                )
                continue
            value, at = final
            g["seeds"].append({"run": str(r.path), "seed": c.seed, "value": value, "env_steps": at})
            g["curves"].append(c)
    for e in envs:
        for label in [k for k, g in groups[e].items() if not g["seeds"]]:
            tell(f"{label} on {e}: no seed left to compare; left out")
            del groups[e][label]
    envs = [e for e in envs if groups[e]]
    if not envs:
        raise ValueError(
            f"no run has a final {metric} to compare" + (f" at {step:,} env steps" if step else "")
        )

    result: dict[str, Any] = {
        "metric": metric,
        "step": step,
        "baseline": baseline,
        "confidence": CONFIDENCE,
        "n_boot": n_boot,
        "runs": [
            {
                "path": str(r.path),
                "label": r.label,
                "algo": r.algo,
                "env": r.env,
                "finished": r.finished,
                "seeds": r.seeds,
                "steps_per_s": r.steps_per_s,
                **_run_provenance(r),
            }
            for r in with_metric
        ],
        "envs": {},
        "aggregate": None,
        "notes": notes,
    }

    bounds: dict[str, tuple[float, float]] = {}
    for e in envs:
        all_vals = np.array([s["value"] for g in groups[e].values() for s in g["seeds"]], float)
        low, high = float(all_vals.min()), float(all_vals.max())
        bounds[e] = (low, high)
        if not high > low:
            tell(f"{e}: every seed scored {low:g}; its normalised scores are all 1")
        rows = []
        for label, g in groups[e].items():
            vals = np.array([s["value"] for s in g["seeds"]], float)
            steps_ = [s["env_steps"] for s in g["seeds"]]
            rates = [r.steps_per_s for r in g["runs"] if r.steps_per_s is not None]
            rows.append(
                {
                    "label": label,
                    "n_seeds": int(vals.size),
                    "per_seed": vals.tolist(),
                    "seeds": g["seeds"],
                    "env_steps": {"min": int(min(steps_)), "max": int(max(steps_))},
                    "steps_per_s": float(np.mean(rates)) if rates else None,
                    "finished": all(r.finished for r in g["runs"]),
                    "runs": [str(r.path) for r in g["runs"]],
                    **_summaries(vals, _normalise(vals, low, high), n_boot, seed),
                }
            )
        rows.sort(key=lambda row: (-row["iqm"]["point"], -row["mean"]["point"], row["label"]))
        order = [row["label"] for row in rows]
        scores = {row["label"]: np.array(row["per_seed"], float) for row in rows}
        pois = _poi_rows(scores, order, baseline if baseline in scores else None, n_boot, seed)
        if baseline is not None and baseline not in scores:
            tell(f"{e}: baseline {baseline!r} has no runs on this env; no probabilities of improvement")
            pois = []
        taus = np.linspace(low, high if high > low else low + 1.0, 101)
        profiles = _profiles(scores, order, taus, n_boot, seed)
        curves = {label: _iqm_curve(groups[e][label]["curves"], min(n_boot, 1000), seed) for label in order}
        result["envs"][e] = {
            "normalisation": {"low": low, "high": high},
            "groups": rows,
            "pairs": pois,
            "performance_profiles": profiles,
            "sample_efficiency": curves,
        }

    if len(envs) > 1:
        result["aggregate"] = _aggregate(result, envs, bounds, baseline, n_boot, seed, tell)
    result["provenance"] = provenance(result["runs"], command)
    return result


def _aggregate(result, envs, bounds, baseline, n_boot, seed, tell) -> dict[str, Any]:
    """Every group present on every env: scores min-max normalised per env, [n_seeds, n_envs]."""

    labels = sorted(set.intersection(*({g["label"] for g in result["envs"][e]["groups"]} for e in envs)))
    everywhere = set(labels)
    for e in envs:
        for g in result["envs"][e]["groups"]:
            if g["label"] not in everywhere:
                tell(f"{g['label']} has no runs on every env; left out of the aggregate over envs")
    if not labels:
        tell("no group has runs on every env: no aggregate over envs")
        return {"envs": envs, "groups": [], "pairs": []}
    matrices: dict[str, np.ndarray] = {}
    for label in labels:
        cols = []
        for e in envs:
            g = next(x for x in result["envs"][e]["groups"] if x["label"] == label)
            cols.append(_normalise(np.array(g["per_seed"], float), *bounds[e]))
        n = min(len(c) for c in cols)
        if any(len(c) != n for c in cols):
            tell(
                f"{label}: seed counts differ across envs ({', '.join(str(len(c)) for c in cols)}); "
                f"the aggregate uses the first {n} of each"
            )
        matrices[label] = np.stack([c[:n] for c in cols], axis=1)  # [n_seeds, n_envs]
    rows = []
    for label in labels:
        m = matrices[label]
        rows.append(
            {
                "label": label,
                "n_seeds": int(m.shape[0]),
                "normalised_per_env": m.T.tolist(),
                **_summaries(m, m, n_boot, seed),
            }
        )
    rows.sort(key=lambda row: (-row["iqm"]["point"], -row["mean"]["point"], row["label"]))
    order = [row["label"] for row in rows]
    pois = _poi_rows(matrices, order, baseline if baseline in matrices else None, n_boot, seed)
    if baseline is not None and baseline not in matrices:
        pois = []
    taus = np.linspace(0.0, 1.0, 101)
    profiles = _profiles(matrices, order, taus, n_boot, seed)
    return {"envs": envs, "groups": rows, "pairs": pois, "performance_profiles": profiles}


# --- provenance ---------------------------------------------------------------------


def _machine(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: meta.get(k) for k in MACHINE_FIELDS}


def machine_text(m: dict[str, Any]) -> str:
    """``AMD EPYC 7763, 2 cores, jax cpu (cpu x 2), host node17``: a machine of :data:`MACHINE_FIELDS`."""
    parts = []
    if m.get("cpu"):
        parts.append(str(m["cpu"]))
    if m.get("cores") is not None:
        parts.append(f"{m['cores']} cores")
    if m.get("jax_backend"):
        dev = f"{m.get('device_kind') or '?'} x {m.get('device_count') or '?'}"
        parts.append(f"jax {m['jax_backend']} ({dev})")
    if m.get("host"):
        parts.append(f"host {m['host']}")
    return ", ".join(parts) or "machine not recorded"


def _resumed_elsewhere(meta: dict[str, Any], start: dict[str, Any]) -> list[dict[str, Any]]:
    """The machines of the run's resumes that differ from its first start's (host, devices)."""
    keys = [k for k in MACHINE_FIELDS if k not in ("cpu", "cores")]
    seen, out = {tuple(start[k] for k in keys)}, []
    for res in meta.get("resumes") or []:
        if not isinstance(res, dict):
            continue
        key = tuple(res.get(k) for k in keys)
        if key not in seen:
            seen.add(key)
            out.append({k: res.get(k) for k in keys})
    return out


def _run_provenance(r: Run) -> dict[str, Any]:
    meta = r.metadata
    cell = r.sweep_cell or {}
    entry: dict[str, Any] = {
        "env_steps": r.env_steps_trained,
        "overrides": r.overrides,
        "overrides_from": CELL_FILE
        if isinstance(cell.get("overrides"), dict)
        else "the label (config fields that differ between runs)",
    }
    if meta is None:
        return {**entry, "machine": None, "machine_text": NO_METADATA, "started_utc": None, "metadata": None}
    m = _machine(meta)
    moved = _resumed_elsewhere(meta, m)
    text = machine_text(m)
    if moved:
        text += "; resumed on " + "; ".join(machine_text(x) for x in moved)
    return {
        **entry,
        "machine": m,
        "resumed_on": moved,
        "machine_text": text,
        "started_utc": meta.get("started_utc"),
        "resumes": len(meta.get("resumes") or []),
        "credo_version": meta.get("credo_version"),
        "git_commit": meta.get("git_commit"),
        "git_dirty": meta.get("git_dirty"),
        "command": meta.get("command"),
        "metadata": meta,
    }


def _code_text(run: dict[str, Any]) -> str | None:
    if run.get("metadata") is None:
        return None
    text = f"credo {run.get('credo_version') or '?'}"
    if run.get("git_commit"):
        text += f" at {str(run['git_commit'])[:10]}" + (
            " (uncommitted changes)" if run.get("git_dirty") else ""
        )
    return text


def provenance(runs_json: list[dict[str, Any]], command: list[str] | None = None) -> dict[str, Any]:
    """When and how the comparison was made, and the machine every run shares (None if they do not).

    ``runs_json`` are the ``runs`` entries of :func:`compare`'s result (with their provenance);
    ``command`` defaults to ``sys.argv``, its program shortened to its name (``credo``).
    """
    from credo import __version__

    argv = list(sys.argv if command is None else command)
    if argv:
        argv[0] = Path(argv[0]).name
    machines = [r["machine"] for r in runs_json]
    shared = (
        machines[0]
        if machines
        and all(m is not None and m == machines[0] for m in machines)
        and not any(r.get("resumed_on") for r in runs_json)
        else None
    )
    codes = sorted({c for c in map(_code_text, runs_json) if c})
    return {
        "written_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": argv,
        "credo_version": __version__,
        "machine": shared,
        "machine_text": machine_text(shared) if shared else None,
        "runs_code": codes,
        "runs_without_metadata": sum(r["metadata"] is None for r in runs_json),
    }


# --- rendering ----------------------------------------------------------------------


def _num(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.3g}"


def _with_ci(s: dict[str, float]) -> str:
    return f"{_num(s['point'])} [{_num(s['low'])}, {_num(s['high'])}]"


def _steps(r: dict[str, int]) -> str:
    return f"{r['min']:,}" if r["min"] == r["max"] else f"{r['min']:,}-{r['max']:,}"


def _poi_table(pairs: list[dict]) -> list[str]:
    if not pairs:
        return []
    lines = [
        "| A | B | P(A > B) [95% CI] | seeds | verdict |",
        "|---|---|---|---|---|",
    ]
    for p in pairs:
        lines.append(
            f"| {p['a']} | {p['b']} | {p['poi']:.2f} [{p['low']:.2f}, {p['high']:.2f}] | "
            f"{p['n_seeds_a']} vs {p['n_seeds_b']} | {p['verdict']} |"
        )
    return lines


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _seed_text(seeds: list[int]) -> str:
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(map(str, seeds))


def _when(utc: str | None) -> str:
    """``2026-11-22 10:15`` of ``2026-11-22T10:15:00+00:00`` (the text itself if it does not parse)."""
    if not utc:
        return "-"
    try:
        return dt.datetime.fromisoformat(utc).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError):
        return str(utc)


def _settings_text(overrides: dict[str, Any]) -> str:
    flat = _flatten(overrides) if overrides else {}
    return ", ".join(f"{k}={_fmt_value(v)}" for k, v in flat.items()) or "-"


def _provenance_header(result: dict[str, Any]) -> list[str]:
    prov = result.get("provenance")
    if not prov:
        return []
    cmd = " ".join(prov["command"]) or "?"
    out = [f"Written {_when(prov['written_utc'])} UTC by `{cmd}` (credo {prov['credo_version']})."]
    if prov["machine_text"]:
        out.append(f"Machine: {prov['machine_text']}.")
    else:
        missing, n = prov["runs_without_metadata"], len(result["runs"])
        why = f"not recorded for {missing} of {n} runs" if missing else "not the same for every run"
        out.append(f"Machine: {why}; see Runs.")
    if prov["runs_code"]:
        out.append(f"Runs made with {', '.join(prov['runs_code'])}.")
    return out + [""]


def _runs_table(result: dict[str, Any]) -> list[str]:
    prov = result.get("provenance")
    if not prov:
        return []
    per_run_machine = prov["machine_text"] is None
    head = ["path", "label", "settings", "seeds", "env steps per seed", "started"] + (
        ["machine"] if per_run_machine else []
    )
    out = ["## Runs", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in result["runs"]:
        steps = r["env_steps"]
        started = _when(r["started_utc"]) if r["metadata"] is not None else "-"
        if r.get("resumes"):
            started += f" (resumed {r['resumes']}x)"
        row = [
            r["path"],
            r["label"],
            _settings_text(r["overrides"]),
            _seed_text(r["seeds"]),
            _steps({"min": min(steps), "max": max(steps)}) if steps else "-",
            started,
        ] + ([r["machine_text"]] if per_run_machine else [])
        out.append("| " + " | ".join(_cell(str(x)) for x in row) + " |")
    return out + [""]


def render_markdown(result: dict[str, Any]) -> str:
    """The comparison as Markdown: provenance, a table per env, the aggregate, verdicts, the runs."""
    m = result["metric"]
    at = (
        f"at the first evaluation at or after {result['step']:,} env steps"
        if result["step"]
        else "at the last evaluation"
    )
    out = [
        f"# credo compare: {m}",
        "",
        f"Final score: {m} of each seed {at}. Point estimates with 95% stratified-bootstrap CIs "
        f"({result['n_boot']} resamples). Optimality gap: of scores min-max normalised over every run "
        "on the env (1 = the best run), lower is better. Verdicts: better/worse only when the 95% CI "
        "of P(A > B) excludes 0.5.",
        "",
        *_provenance_header(result),
    ]
    unfinished = False
    for env, block in result["envs"].items():
        nb = block["normalisation"]
        out += [
            f"## {env}",
            "",
            "| group | seeds | IQM [95% CI] | median [95% CI] | mean [95% CI] | opt. gap [95% CI] | per-seed | env steps | steps/s |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for g in block["groups"]:
            star = "" if g["finished"] else " *"
            unfinished |= not g["finished"]
            per_seed = ", ".join(_num(v) for v in g["per_seed"])
            out.append(
                f"| {g['label']}{star} | {g['n_seeds']} | {_with_ci(g['iqm'])} | {_with_ci(g['median'])} | "
                f"{_with_ci(g['mean'])} | {_with_ci(g['optimality_gap'])} | {per_seed} | "
                f"{_steps(g['env_steps'])} | {_num(g['steps_per_s'])} |"
            )
        out += ["", f"Normalisation on {env}: low {_num(nb['low'])}, high {_num(nb['high'])}.", ""]
        if block["pairs"]:
            out += [f"Probability of improvement on {env}:", ""] + _poi_table(block["pairs"]) + [""]
    agg = result.get("aggregate")
    if agg and agg["groups"]:
        out += [
            f"## All envs ({len(agg['envs'])}, min-max normalised per env)",
            "",
            "| group | seeds | IQM [95% CI] | median [95% CI] | mean [95% CI] | opt. gap [95% CI] |",
            "|---|---|---|---|---|---|",
        ]
        for g in agg["groups"]:
            out.append(
                f"| {g['label']} | {g['n_seeds']} x {len(agg['envs'])} | {_with_ci(g['iqm'])} | "
                f"{_with_ci(g['median'])} | {_with_ci(g['mean'])} | {_with_ci(g['optimality_gap'])} |"
            )
        out += [""]
        if agg["pairs"]:
            out += ["Probability of improvement over all envs:", ""] + _poi_table(agg["pairs"]) + [""]
    if unfinished:
        out += ["\\* unfinished run(s) (no summary.json): scores from their evaluations so far.", ""]
    out += ["## Verdicts", ""]
    for env, block in result["envs"].items():
        for p in block["pairs"]:
            out.append(f"- {env}: {p['line']}")
    if agg:
        for p in agg["pairs"]:
            out.append(f"- all envs: {p['line']}")
    if not any(b["pairs"] for b in result["envs"].values()) and not (agg and agg["pairs"]):
        out.append("- (one group: nothing to compare it with)")
    out.append("")
    if result["notes"]:
        out += ["## Notes", ""] + [f"- {n}" for n in result["notes"]] + [""]
    out += _runs_table(result)
    return "\n".join(out)


def write_outputs(result: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Writes compare.md, compare.json, performance_profiles.png and sample_efficiency.png."""
    from credo import stats

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "compare.md", out / "compare.json"]
    paths[0].write_text(render_markdown(result), encoding="utf-8")
    paths[1].write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    m = result["metric"]

    def named(block: dict, label: str) -> str:
        n = next(g["n_seeds"] for g in block["groups"] if g["label"] == label)
        return f"{label} (n={n})"

    def bands(block: dict, key: str, x: str, y: str) -> dict:
        return {named(block, k): (v[x], v[y], v["low"], v["high"]) for k, v in block[key].items()}

    profiles = {
        env: bands(block, "performance_profiles", "tau", "profile") for env, block in result["envs"].items()
    }
    agg = result.get("aggregate")
    if agg and agg["groups"]:
        profiles["all envs (normalised)"] = bands(agg, "performance_profiles", "tau", "profile")
    paths.append(
        stats.plot_bands(
            profiles,
            out / "performance_profiles.png",
            xlabel=f"final {m} (tau)",
            ylabel="fraction of runs with score > tau",
            suptitle="Performance profiles (95% stratified-bootstrap bands)",
            drawstyle="steps-post",
        )
    )
    curves = {env: bands(block, "sample_efficiency", "steps", "iqm") for env, block in result["envs"].items()}
    paths.append(
        stats.plot_bands(
            curves,
            out / "sample_efficiency.png",
            xlabel="env steps",
            ylabel=f"IQM {m}",
            suptitle="IQM over seeds (95% stratified-bootstrap bands)",
        )
    )
    return paths


# --- command line -------------------------------------------------------------------


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Adds ``credo compare`` and ``credo export marl-eval`` to the ``credo`` command's subparsers."""
    c = sub.add_parser(
        "compare",
        help="compare run/sweep directories: IQM with CIs, probability of improvement, verdicts",
        description="Groups runs by label (a sweep cell's, else algo[differing config fields]) and env, "
        "and writes compare.md, compare.json, performance_profiles.png and sample_efficiency.png.",
    )
    c.add_argument(
        "paths", nargs="+", metavar="RUN_OR_SWEEP_DIR", help="run directories or directories above them"
    )
    c.add_argument(
        "--metric",
        default="test_return",
        help="evaluation metric (default test_return; e.g. test_won, test_success)",
    )
    c.add_argument("--baseline", metavar="LABEL", help="compare every group with this one only")
    c.add_argument("--out", metavar="DIR", help="output directory (default: the first RUN_OR_SWEEP_DIR)")
    c.add_argument(
        "--step",
        type=lambda x: int(float(x)),
        metavar="N",
        help="score each seed at its first evaluation at or after N env steps (default: its last)",
    )
    c.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples (default 2000)")
    c.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    c.set_defaults(func=cmd_compare)

    e = sub.add_parser("export", help="export run/sweep directories to another tool's format")
    esub = e.add_subparsers(dest="export_format", required=True)
    m = esub.add_parser(
        "marl-eval",
        help="InstaDeep marl-eval's JSON: {env: {task: {algorithm: {run: {step_k: {...}}}}}}",
    )
    m.add_argument("paths", nargs="+", metavar="RUN_OR_SWEEP_DIR")
    m.add_argument("-o", "--out", required=True, metavar="FILE.json", help="the JSON file to write")
    m.set_defaults(func=_cmd_export_marl_eval)


def _cmd_export_marl_eval(args: argparse.Namespace) -> int:
    from credo.study.marl_eval import cmd_export_marl_eval

    return cmd_export_marl_eval(args)


def _default_out(paths: list[str]) -> Path:
    first = Path(paths[0])
    return first if first.is_dir() else Path("compare")


def cmd_compare(args: argparse.Namespace) -> int:
    """``credo compare``: loads the runs under ``args.paths``, compares them (``compare``), writes the
    report files to ``args.out`` (default: the first path if it is a directory, else ``compare/``)
    and prints the markdown report; returns the exit status 0. ValueError when no run has evaluations.
    """
    note, runs = load_runs_or_fail(args.paths)
    result = compare(
        runs,
        args.metric,
        step=args.step,
        baseline=args.baseline,
        n_boot=args.n_boot,
        seed=args.seed,
        note=None,
    )
    for n in result["notes"]:
        note(n)
    out = Path(args.out) if args.out else _default_out(args.paths)
    paths = write_outputs(result, out)
    print(render_markdown(result))
    print(f"wrote {', '.join(str(p) for p in paths)}")
    return 0
