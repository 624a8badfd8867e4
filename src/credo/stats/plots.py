"""Learning-curve plots with bootstrap confidence bands.

Figures are drawn on matplotlib's non-interactive Agg canvas directly
(``matplotlib.figure.Figure`` + ``FigureCanvasAgg``), so nothing is displayed,
no display is needed, and the caller's pyplot backend and global state are
left untouched.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from credo.stats.aggregate import bootstrap_band

__all__ = ["plot_bands", "plot_learning_curves"]


def plot_learning_curves(
    curves: Mapping[str, tuple[ArrayLike, ArrayLike]],
    path: str | os.PathLike[str],
    xlabel: str = "env steps",
    ylabel: str = "test return",
    title: str | None = None,
    *,
    confidence: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
    logx: bool = False,
) -> Path:
    """Plot mean learning curves with shaded bootstrap bands and save them as a PNG.

    One line per label: the mean over seeds at each x, with the ``confidence``
    (default 95%) percentile-bootstrap band over seeds shaded around it (see
    :func:`credo.stats.bootstrap_band`). With a single seed the band collapses
    onto the line. NaNs mark points a seed has no value at; they are ignored
    per point, and points with no value in any seed leave a gap.

    Args:
        curves: ``{label: (x, ys)}`` with ``x`` of shape ``[n_points]`` and ``ys``
            of shape ``[n_seeds, n_points]`` (a 1-D ``ys`` is taken as one seed).
            Labels may have different x grids and seed counts.
        path: where to write the PNG; missing parent directories are created.
        xlabel, ylabel, title: axis labels and optional title.
        confidence, n_boot, seed: passed to ``bootstrap_band``.
        logx: a logarithmic x axis (for counts spread over decades).

    Returns:
        ``path`` as a ``pathlib.Path``.

    Raises:
        ValueError: if ``curves`` is empty or an entry's shapes are wrong.
    """
    if not curves:
        raise ValueError(
            "curves must map at least one label to (x [n_points], ys [n_seeds, n_points]), got {}"
        )
    fig = Figure(figsize=(6.4, 4.2), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for label, entry in curves.items():
        try:
            x_raw, ys_raw = entry
        except (TypeError, ValueError) as e:
            raise ValueError(f"curves[{label!r}] must be a pair (x, ys), got {type(entry).__name__}") from e
        x = np.asarray(x_raw, dtype=np.float64)
        ys = np.asarray(ys_raw, dtype=np.float64)
        if ys.ndim == 1:
            ys = ys[None, :]
        if x.ndim != 1 or ys.ndim != 2 or ys.shape[1] != x.shape[0] or x.size == 0 or ys.shape[0] == 0:
            raise ValueError(
                f"curves[{label!r}]: expected x of shape [n_points] and ys of shape [n_seeds, n_points] "
                f"with n_points, n_seeds >= 1, got x {np.shape(x_raw)} and ys {np.shape(ys_raw)}"
            )
        mean, low, high = bootstrap_band(ys, n_boot=n_boot, confidence=confidence, seed=seed)
        n_seeds = ys.shape[0]
        (line,) = ax.plot(x, mean, label=f"{label} (n={n_seeds})", linewidth=1.8)
        ax.fill_between(x, low, high, color=line.get_color(), alpha=0.25, linewidth=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logx:
        ax.set_xscale("log")
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize="small", frameon=False)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out


def plot_bands(
    panels: Mapping[str, Mapping[str, tuple[ArrayLike, ArrayLike, ArrayLike, ArrayLike]]],
    path: str | os.PathLike[str],
    xlabel: str,
    ylabel: str,
    *,
    suptitle: str | None = None,
    drawstyle: str = "default",
) -> Path:
    """Lines with precomputed shaded bands, one subplot per panel, saved as a PNG.

    For statistics whose band is computed elsewhere: IQM sample-efficiency
    curves (a stratified-bootstrap CI at each point) or performance profiles
    (:func:`credo.stats.performance_profile`). A label keeps its colour across
    panels. NaNs leave gaps.

    Args:
        panels: ``{panel title: {label: (x, y, low, high)}}``, each array of shape
            ``[n_points]`` (points may differ between labels).
        path: where to write the PNG; missing parent directories are created.
        xlabel, ylabel: axis labels (the same in every panel).
        suptitle: optional title over all panels.
        drawstyle: matplotlib's line draw style, e.g. ``"steps-post"`` for profiles.

    Returns:
        ``path`` as a ``pathlib.Path``.

    Raises:
        ValueError: if there is no panel, a panel has no line, or an entry's shapes differ.
    """
    if not panels or not all(panels.values()):
        raise ValueError("panels must map at least one title to a non-empty {label: (x, y, low, high)}")
    n = len(panels)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig = Figure(figsize=(5.2 * cols, 3.9 * rows), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    colours: dict[str, str] = {}
    cycle = iter(f"C{i % 10}" for i in range(10**6))
    for k, (title, lines) in enumerate(panels.items()):
        ax = fig.add_subplot(rows, cols, k + 1)
        for label, entry in lines.items():
            try:
                x, y, lo, hi = (np.asarray(a, dtype=np.float64) for a in entry)
            except (TypeError, ValueError) as e:
                raise ValueError(f"{title!r}/{label!r}: expected (x, y, low, high)") from e
            if not (x.ndim == 1 and x.shape == y.shape == lo.shape == hi.shape and x.size):
                raise ValueError(
                    f"{title!r}/{label!r}: x, y, low and high must be 1-D of one length >= 1, got "
                    f"{x.shape}, {y.shape}, {lo.shape}, {hi.shape}"
                )
            colour = colours.setdefault(label, next(cycle))
            ax.plot(x, y, label=label, color=colour, linewidth=1.8, drawstyle=drawstyle)
            step = {"steps-post": "post", "steps-pre": "pre", "steps-mid": "mid"}.get(drawstyle)
            ax.fill_between(x, lo, hi, color=colour, alpha=0.22, linewidth=0, step=step)
        ax.set_title(title, fontsize="medium")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize="small", frameon=False)
    if suptitle:
        fig.suptitle(suptitle)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out
