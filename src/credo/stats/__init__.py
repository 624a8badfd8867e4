"""Statistics for comparing RL methods over seeds and tasks (rliable-style).

Interquartile mean, stratified bootstrap confidence intervals, probability of
improvement, min-max normalisation, optimality gap, performance profiles,
learning-curve bands and plots; see
:mod:`credo.stats.aggregate` and :mod:`credo.stats.plots`.
"""

from credo.stats.aggregate import (
    aggregate_summary,
    bootstrap_band,
    iqm,
    min_max_normalise,
    optimality_gap,
    performance_profile,
    probability_of_improvement,
    stratified_bootstrap_ci,
    stratified_resample,
)
from credo.stats.plots import plot_bands, plot_learning_curves

__all__ = [
    "aggregate_summary",
    "bootstrap_band",
    "iqm",
    "min_max_normalise",
    "optimality_gap",
    "performance_profile",
    "plot_bands",
    "plot_learning_curves",
    "probability_of_improvement",
    "stratified_bootstrap_ci",
    "stratified_resample",
]
