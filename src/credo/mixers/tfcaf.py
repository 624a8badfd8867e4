"""TFCAF (QLLM): a training-free credit function written by an LLM (or by hand) in place of a mixing network.

``q_tot = tfcaf(agent_qs [B, n], state [B, S])``, with no trainable parameters.
The function is loaded from a file and, before it may run here, passes every
check of ``credo.qllm.checks`` (in a separate, limited process); only then is it
defined in the sandbox's restricted namespace and traced into the learner.

The checks run at small batches and at a large one; a function may still behave
differently at the exact number of rows a learner calls it with (``batch_size``
x episode steps, and other sizes for targets). So the mixer checks each batch
size it is traced with, in the same limited process, before the function runs
at that size here: code that would hang, allocate memory that grows faster than
the batch, or return NaN there is refused with a one-line reason instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import flax.linen as nn

# Batch sizes the main checks leave to themselves: the mixer's initialisation calls it with one row
# (its outputs are unused: a TFCAF has no parameters), and the checks' own runs use 64 rows.
_COVERED_ROWS = (1, 64)


class TFCAFMixer(nn.Module):
    """A checked TFCAF as a mixer: ``fn(agent_qs [B, n], state [B, S])`` over the flattened leading axes.

    Built by ``make_tfcaf_mixer``; it has no parameters. Before ``fn`` first runs at a batch size the
    checks have not covered, ``check_batch_size`` checks ``source`` at that size (ValueError when
    it fails there).
    """

    n_agents: int
    state_dim: int = 0
    n_actions: int = 0
    fn: Callable | None = None  # the checked tfcaf(agent_qs [B, n], state [B, S]) -> [B] or [B, 1]
    source: str = ""  # the checked code: each new batch size is checked before ``fn`` runs at it ("" = never)
    igm: bool = True  # the IGM gate the code was checked with

    @nn.compact
    def __call__(self, agent_qs, state, max_qs=None, actions_onehot=None):
        lead = agent_qs.shape[:-1]
        if self.source and math.prod(lead) not in _COVERED_ROWS:
            check_batch_size(self.source, self.n_agents, self.state_dim, self.igm, lead)
        q = self.fn(agent_qs.reshape(-1, self.n_agents), state.reshape(-1, state.shape[-1]))
        return q.reshape(lead)


@lru_cache(maxsize=16)
def _checked(source: str, n_agents: int, state_dim: int, igm: bool, batch_rows: int | None = None):
    from credo.llm.sandbox import compile_restricted
    from credo.qllm.checks import DEFAULT_BATCH_ROWS, ENTRY, check_tfcaf

    report = check_tfcaf(source, n_agents, state_dim, igm=igm, batch_rows=batch_rows)
    if not report.passed:
        raise ValueError(f"the TFCAF was rejected by the sandbox: {report.reason}\n{report.format()}")
    for rows in [DEFAULT_BATCH_ROWS] if batch_rows is None else [batch_rows]:
        _passed.add((report.source, n_agents, state_dim, igm, rows))
    return report.source, compile_restricted(report.source, ENTRY, 2)


_passed: set[tuple] = set()  # (source, n_agents, state_dim, igm, rows) whose checks passed in this process


def check_batch_size(source: str, n_agents: int, state_dim: int, igm: bool, lead: tuple[int, ...]) -> None:
    """Checks ``source`` at ``prod(lead)`` rows per call in the sandbox's limited process, once per
    size and process; raises ``ValueError`` with the reason if it fails there.

    ``lead`` is the call's leading shape, ``[B, T]`` in the value learners, which also call the
    mixer on ``[B, T + 1]`` (targets): the sizes of one more and one less step are checked in the
    same run, to spare a second start of the limited process.
    """
    rows = math.prod(lead)
    if (source, n_agents, state_dim, igm, rows) in _passed:
        return
    sizes = {rows}
    if len(lead) >= 2:
        per_step = math.prod(lead[:-1])
        sizes |= {per_step * t for t in (lead[-1] - 1, lead[-1] + 1) if t >= 1}
    sizes = sorted(r for r in sizes if r not in _COVERED_ROWS)
    from credo.qllm.checks import check_tfcaf

    report = check_tfcaf(source, n_agents, state_dim, igm=igm, batch_rows=sizes)
    if not report.passed:
        raise ValueError(
            f"the TFCAF was rejected at the batch size training calls it with ({rows:,} rows of agent Q-values: "
            f"batch_size x episode steps), though it passed the checks at other sizes: {report.reason}"
        )
    _passed.update((source, n_agents, state_dim, igm, r) for r in sizes)


def make_tfcaf_mixer(
    n_agents: int,
    state_dim: int,
    n_actions: int,
    path: str | None = None,
    gamma: int | None = None,
    batch_rows: int | None = None,
):
    """The mixer of the TFCAF in ``path``; ``gamma`` (0/1) overrides the file's IGM gate (default 1).

    ``batch_rows``: the rows of one training call, if the caller knows them (``batch_size`` x
    episode steps); else the checks use their default large size. Either way the mixer checks
    every batch size it is then traced with.
    """
    from credo.qllm.artifact import load_tfcaf

    if not path:
        raise ValueError(
            "the tfcaf mixer needs a TFCAF file: --set tfcaf=PATH (a .json from `credo qllm generate ENV`, or a "
            "hand-written .py defining tfcaf(agent_qs, state))."
        )
    tfcaf = load_tfcaf(path)
    g = gamma if gamma is not None else (tfcaf.gamma if tfcaf.gamma is not None else 1)
    if g not in (0, 1):
        raise ValueError(f"tfcaf_gamma must be 0 or 1, got {g!r}")
    source, fn = _checked(tfcaf.source, n_agents, state_dim, bool(g), batch_rows)
    return TFCAFMixer(
        n_agents=n_agents, state_dim=state_dim, n_actions=n_actions, fn=fn, source=source, igm=bool(g)
    )
