"""Generalised advantage estimation over padded episodes (Schulman et al. 2016).

Episodes are stored as the engine collects them: ``[B, T]`` steps with a mask of
the steps that happened, and ``T + 1`` values (the state before every step and the
one after the last). A terminated episode does not bootstrap; one cut by the time
limit bootstraps from the value of its final state, which the collector stores at
index ``t_end + 1``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def td_errors(rewards, values, terminated, mask, gamma: float):
    """One-step TD errors ``r_t + gamma (1 - term_t) V_{t+1} - V_t`` on the steps that happened.

    rewards: [B, T, ...]; values: [B, T+1, ...]; terminated, mask: [B, T]. Returns [B, T, ...]
    (0 on padding). Trailing dims (agents) broadcast against the [B, T] flags.
    """
    extra = rewards.ndim - 2
    expand = lambda x: x.reshape(x.shape + (1,) * extra).astype(rewards.dtype)  # noqa: E731
    term, m = expand(terminated), expand(mask)
    delta = rewards + gamma * (1.0 - term) * values[:, 1:] - values[:, :-1]
    return delta * m


def discounted_sum(xs, mask, discount: float):
    """``y_t = x_t + discount * m_{t+1} * y_{t+1}`` backwards over each padded episode.

    xs: [B, T, ...]; mask: [B, T]. A step's sum stops at the end of its episode (the
    first unfilled step), so padding never leaks into real steps.
    """
    extra = xs.ndim - 2
    m = mask.reshape(mask.shape + (1,) * extra).astype(xs.dtype)
    cont = jnp.concatenate([m[:, 1:], jnp.zeros_like(m[:, :1])], 1)  # m_{t+1}, 0 after the last step

    def back(acc, inp):
        x_t, c_t = inp
        acc = x_t + discount * c_t * acc
        return acc, acc

    tm = lambda a: jnp.moveaxis(a, 1, 0)  # noqa: E731
    _, ys = jax.lax.scan(back, jnp.zeros_like(xs[:, 0]), (tm(xs), tm(cont)), reverse=True)
    return jnp.moveaxis(ys, 0, 1) * m


def gae(rewards, values, terminated, mask, gamma: float, lam: float):
    """Advantages and value targets: ``A_t = sum_l (gamma lam)^l delta_{t+l}`` within the episode.

    rewards: [B, T, ...]; values: [B, T+1, ...]; terminated, mask: [B, T].
    Returns (advantages [B, T, ...], returns = advantages + V_t [B, T, ...]), 0 on padding.
    """
    delta = td_errors(rewards, values, terminated, mask, gamma)
    adv = discounted_sum(delta, mask, gamma * lam)
    m = mask.reshape(mask.shape + (1,) * (rewards.ndim - 2)).astype(rewards.dtype)
    return adv, (adv + values[:, :-1]) * m
