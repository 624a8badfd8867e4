"""The algebra of RICL (paper 003, section 3.4) and RICOL's policy-improvement target (eq. 3.5).

An in-context update turns ``pi_0(.|s)`` into ``pi'(.|s)``. Read as soft policy
improvement, ``pi' = pi_0 exp(A / beta) / Z``, so

    A(s, a) = beta * (log pi'(a|s) - log pi_0(a|s) + log Z(s))            (eq. 3.3, one trajectory)

and ``log Z`` follows from the soft advantage's mean under ``pi_0``,
``E_{pi_0}[A] = -beta H(pi_0)`` (eq. A.21):
``log Z = KL(pi_0 || pi') - H(pi_0)``. With ``soft=False`` the advantage has
mean zero instead (``log Z = KL(pi_0 || pi')``). Either constant is the same for
every action, so the improved policies below, and the paper's error metric,
do not depend on it. Everything works on log-probabilities over the last axis.
"""

from __future__ import annotations

import numpy as np


def _normalise(logp: np.ndarray) -> np.ndarray:
    logp = np.asarray(logp, np.float64)
    m = logp.max(-1, keepdims=True)
    return logp - (m + np.log(np.exp(logp - m).sum(-1, keepdims=True)))


def entropy(logp: np.ndarray) -> np.ndarray:
    """Entropy (nats) over the last axis, from log-probabilities (renormalised first, like ``kl``)."""
    logp = _normalise(logp)
    return -(np.exp(logp) * logp).sum(-1)


def kl(logp: np.ndarray, logq: np.ndarray) -> np.ndarray:
    """KL(p || q) over the last axis, from log-probabilities."""
    logp, logq = _normalise(logp), _normalise(logq)
    return (np.exp(logp) * (logp - logq)).sum(-1)


def log_partition(logp0: np.ndarray, logp1: np.ndarray, soft: bool = True) -> np.ndarray:
    """``log Z`` that makes ``beta (log pi1/pi0 + log Z)`` the (soft) advantage of ``pi0``."""
    z = kl(logp0, logp1)
    return z - entropy(logp0) if soft else z


def ricl_advantage(logp0: np.ndarray, logp_updated: np.ndarray, beta: float, soft: bool = True) -> np.ndarray:
    """Eq. 3.3: ``beta/n sum_i (log pi'_i / pi_0 + log Z_i)``.

    ``logp0``: ``[..., A]``; ``logp_updated``: ``[n, ..., A]``, one in-context
    updated policy per trajectory. Returns ``[..., A]``.
    """
    logp0 = _normalise(logp0)
    logp1 = _normalise(logp_updated)
    per = beta * (logp1 - logp0 + log_partition(logp0, logp1, soft)[..., None])
    return per.mean(0)


def improved_policy(logp0: np.ndarray, advantage: np.ndarray, beta: float) -> np.ndarray:
    """log of ``pi_0 exp(A / beta)``, normalised: soft policy improvement (eq. 3.1)."""
    return _normalise(_normalise(logp0) + np.asarray(advantage, np.float64) / beta)


def trust_region_target(logp_k: np.ndarray, logp_prime: np.ndarray, alpha: float) -> np.ndarray:
    """Eq. 3.5's target, log of ``exp((1 - alpha) log pi_k + alpha log pi') / Z``.

    ``alpha = 0`` gives ``pi_k`` back, ``alpha = 1`` gives ``pi'``.
    """
    return _normalise((1.0 - alpha) * _normalise(logp_k) + alpha * _normalise(logp_prime))


def mc_advantage(q_hat: np.ndarray, logp0: np.ndarray) -> np.ndarray:
    """Monte Carlo advantage ``Q_hat(s, a) - sum_a pi_0(a|s) Q_hat(s, a)`` (section 3.6.2)."""
    p0 = np.exp(_normalise(logp0))
    return q_hat - (p0 * q_hat).sum(-1, keepdims=True)
