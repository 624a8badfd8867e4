"""TD(lambda) targets over padded episodes, as pymarl's ``build_td_lambda_targets``."""

import jax
import jax.numpy as jnp


def td_lambda_targets(rewards, terminated, mask, target_qs, gamma: float, td_lambda: float, bonus=None):
    """Lambda-returns for every step of a batch of padded episodes.

    rewards, terminated, mask: [B, T] (mask: the step happened); target_qs: [B, T+1, ...]
    (the target value of the state before each step, plus the last state).
    Returns [B, T, ...]. With ``td_lambda = 0`` these are one-step targets
    ``r_t + gamma * (1 - terminated_t) * target_qs[t+1]``. An episode cut by
    the time limit bootstraps from its last state; a terminated one does not.

    ``bonus`` [B, T+1, ...] (maximum-entropy learning) is added to the lambda-return
    of step t+1 where step t continues through it: with ``target_qs`` holding soft
    values ``Q - alpha log pi`` of sampled actions and ``bonus[:, t] = -alpha log
    pi`` of the same sampled actions (the authors' code) or of the taken ones
    (0 at T and on padding), this is the soft TD(lambda) target of ME-IGM's
    eq. A.1 (log pi subtracted from both the t+1 value and the t+1 return;
    ``credo.algos.me_igm.soft_td_targets``).
    """
    extra = target_qs.ndim - 2  # trailing dims, e.g. agents for independent learners
    expand = lambda x: x.reshape(x.shape + (1,) * extra).astype(target_qs.dtype)  # noqa: E731
    r, term, m = expand(rewards), expand(terminated), expand(mask)
    ended = expand(jnp.any(terminated, axis=1, keepdims=True))[:, 0]  # [B, ...]
    last = target_qs[:, -1] * (1.0 - ended)

    bonus = jnp.zeros_like(target_qs) if bonus is None else bonus.astype(target_qs.dtype)

    def back(ret_next, xs):
        r_t, term_t, m_t, q_next, bonus_next = xs
        cont = td_lambda * gamma * (ret_next + bonus_next)
        ret = cont + m_t * (r_t + (1.0 - td_lambda) * gamma * q_next * (1.0 - term_t))
        return ret, ret

    time_major = lambda x: jnp.moveaxis(x, 1, 0)  # noqa: E731
    xs = (
        time_major(r),
        time_major(term),
        time_major(m),
        time_major(target_qs[:, 1:]),
        time_major(bonus[:, 1:]),
    )
    _, rets = jax.lax.scan(back, last, xs, reverse=True)
    return jnp.moveaxis(rets, 0, 1)
