"""What the engine asks of a learner and of a mixer: the contracts a plugin implements.

A **learner** (an algorithm) is built per run as ``factory(cfg, spec, env)`` from its config
dataclass (a subclass of ``credo.algos.common.RunConfig``), the env's ``EnvSpec`` and the env. The
engine (``credo/engine/train.py``) vmaps its pure functions over seeds and jits them, so every
method below must be a pure JAX function of its arguments (no Python side effects, no NumPy on
traced values). ``credo.algos.value.ValueLearner`` is the reference implementation.

A **mixer** is a Flax module class (or a factory) built as ``Mixer(n_agents=, state_dim=,
n_actions=, **kwargs)`` and applied as ``mixer.apply(params, agent_qs [..., n_agents], state
[..., state_dim], max_qs=None, actions_onehot=None) -> q_tot [...]``; it may ignore the keyword
context (only QPLEX reads it). ``credo.mixers.vdn.VDNMixer`` is the smallest example.

``check_learner`` and ``check_mixer`` run at registration, so a plugin that misses a part of its
contract fails with a message naming the part, not deep inside a jitted program.
"""

from __future__ import annotations

import inspect
from typing import Any, Protocol, runtime_checkable

import jax


@runtime_checkable
class Learner(Protocol):
    """The learner protocol of the engine (off-policy learners; on-policy ones set ``on_policy``)."""

    spec: Any  # the env's EnvSpec
    explores_with_epsilon: bool  # True: act() follows the trainer's epsilon schedule; False: NaN is passed
    on_policy: bool  # True: update() gets each fresh batch and recorder() output, no replay buffer

    def init(self, key: jax.Array) -> Any:
        """The learner state of one seed (a NamedTuple pytree with a ``params`` field)."""

    def initial_hidden(self, batch_shape: tuple[int, ...]) -> jax.Array:
        """Recurrent state for ``batch_shape`` envs (any array; zeros of shape batch_shape + (n, 1) if none)."""

    def act(self, params, hidden, obs, state, avail, last_actions, key, epsilon, greedy: bool = False):
        """``(hidden, actions [..., n_agents] int32)`` for one step of a batch of envs."""

    def update(self, state, batch, context, key):
        """``(state, metrics dict of scalars)``: one learning step. ``batch`` is an ``EpisodeBatch``
        of whole episodes; ``context`` is the episodes seen (int32, wrapping) for off-policy
        learners, the ``recorder``'s output for on-policy ones. Metrics whose name holds ``loss``
        are watched for NaN/inf."""

    def param_count(self, params) -> dict:
        """Parameter counts by part, for the summary (``{"agent": 12345, ...}``)."""

    def recorder(self, env):
        """What on-policy learners need collected besides the batch (None if nothing)."""


_LEARNER_PARTS = ("init", "initial_hidden", "act", "update", "param_count")
_ACT_ARGS = ("params", "hidden", "obs", "state", "avail", "last_actions", "key", "epsilon", "greedy")


def check_learner(learner: Any, name: str) -> None:
    """Raises TypeError naming what ``learner`` (built by plugin algorithm ``name``) lacks."""
    missing = [p for p in _LEARNER_PARTS if not callable(getattr(learner, p, None))]
    if not hasattr(learner, "spec"):
        missing.append("spec")
    if not isinstance(getattr(learner, "explores_with_epsilon", None), bool):
        missing.append("explores_with_epsilon (a bool)")
    if getattr(learner, "on_policy", False) and not callable(getattr(learner, "recorder", None)):
        missing.append("recorder (on-policy learners)")
    if missing:
        raise TypeError(
            f"the learner of algorithm {name!r} ({type(learner).__name__}) lacks {', '.join(missing)}; "
            "see credo.protocols.Learner for the contract."
        )
    params = list(inspect.signature(learner.act).parameters)
    if params[: len(_ACT_ARGS)] != list(_ACT_ARGS):
        raise TypeError(
            f"{type(learner).__name__}.act of algorithm {name!r} takes ({', '.join(params)}); the engine "
            f"calls act({', '.join(_ACT_ARGS)})."
        )


def check_mixer(factory: Any, name: str) -> None:
    """Raises TypeError if mixer ``factory`` cannot be built as the engine builds mixers."""
    if not callable(factory):
        raise TypeError(f"mixer {name!r} must be a Flax module class or a factory, got {factory!r}.")
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return  # a builtin or C callable: nothing to inspect
    params = sig.parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    missing = [k for k in ("n_agents", "state_dim", "n_actions") if k not in params and not takes_any]
    if missing:
        raise TypeError(
            f"mixer {name!r} ({getattr(factory, '__name__', factory)}) is built as "
            f"{getattr(factory, '__name__', 'Mixer')}(n_agents=, state_dim=, n_actions=, **kwargs), but takes no "
            f"{', '.join(missing)}; add them as fields (Flax) or parameters, even if unused."
        )
