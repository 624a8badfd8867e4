"""A grammar of TFCAFs that the sandbox accepts, for constrained decoding by a small LLM.

The coder writes the body of ``tfcaf(agent_qs, state)`` after a fixed head (the
signature and the env's named state view, ``credo.qllm.task.state_view``) under
a context-free grammar whose every sentence

* parses, defines ``tfcaf`` with two positional arguments and passes the
  sandbox's whitelist (``credo.llm.sandbox.check_source``): it loads only the
  view's names, ``agent_qs``, ``state`` and the three locals it assigns itself
  (``score``, then ``w``, then optionally ``b``), and calls only functions the
  sandbox whitelists;
* is typed by shape: ``score`` and ``w`` are ``[B, n]`` (built from the view's
  per-agent fields), ``b`` is ``[B, 1]`` (reductions over axis 1 with
  ``keepdims``), the result ``jnp.sum(w * agent_qs, axis=1)`` plus optional
  ``[B]`` terms; nothing reduces over the batch axis;
* is bounded: expressions nest at most three levels over fields of magnitude
  ~100 and constants at most 10, divisions are only by ``1.0 + jnp.abs(...)``,
  and only functions finite on every finite input appear, so outputs stay finite;
* under the IGM gate (gamma = 1) has non-negative weights (``softmax``, or a
  positive constant plus a non-negative function) and only non-negative
  multiples of ``jnp.max/mean/sum(agent_qs)``, so it is monotone in every Q_i.

The grammar is a subset of the sandbox's language (hand-written code may use
loops, helpers and every whitelisted name); it never goes beyond it.

**One source.** The function names come from the sandbox's own tables
(``JNP_FUNCTIONS``, ``JAX_NN_FUNCTIONS`` ...): ``ROLES`` says what each
whitelisted name may do in a grammar sentence and ``EXCLUDED`` why the others
are left out, and the grammar uses ``role names ∩ whitelist``, so a name the
sandbox drops leaves the grammar with it. ``whitelist_mismatch()`` lists every
whitelisted name that is in neither table, and every classified name the
sandbox no longer has; the tests require it to be empty, so a whitelist change
without a decision here fails them.

The grammar is a plain data structure (``Grammar``): rendered to GBNF
(llama.cpp's format, which xgrammar and vLLM also read; llguidance converts it
to its Lark dialect with its own converter), and sampled at random without any
LLM (``sample``) for the tests.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

from credo.llm import sandbox

# --- what each whitelisted name may do in a grammar sentence ---------------------------------

ROLES: dict[str, dict[str, tuple[str, ...]]] = {
    "jnp": {
        # elementwise, finite for every finite input of the magnitudes the grammar builds (<= 1e8)
        "unary": (
            "abs",
            "absolute",
            "tanh",
            "sin",
            "cos",
            "sign",
            "square",
            "negative",
            "floor",
            "ceil",
            "round",
        ),
        # elementwise and >= 0 everywhere: weights under the IGM gate, as `c + f(score)` with c > 0
        "nonneg": ("abs", "absolute", "square"),
        # finite on non-negative inputs: written f(jnp.abs(x))
        "of_abs": ("sqrt", "log1p"),
        # reductions over the agents or items (axis=1, keepdims=True)
        "reduce": ("sum", "mean", "max", "min"),
        # reductions of agent_qs that are monotone in every Q_i (non-negative sub-gradients)
        "q_reduce": ("max", "mean", "sum"),
        # [B, n] of ones when the view has no per-agent field
        "ones": ("ones_like",),
        # used by the named state views (credo.qllm.task.state_view), not by the body
        "view": ("sum", "min", "stack", "sqrt", "abs", "mean"),
    },
    "jax.nn": {
        "unary": (
            "tanh",
            "sigmoid",
            "relu",
            "relu6",
            "softplus",
            "silu",
            "swish",
            "gelu",
            "elu",
            "celu",
            "leaky_relu",
            "log_sigmoid",
        ),
        "nonneg": ("sigmoid", "softplus", "relu", "relu6"),
        "normalise": ("softmax",),
    },
    "array": {"view": ("reshape",)},
    "builtins": {"view": ("range",)},
    "jnp.linalg": {},
}

_EXCLUDED_GROUPS = {
    "jnp": {
        "overflows to inf on the states the checks use (|s| up to 100)": "exp expm1 power cosh sinh tan prod cumprod",
        "NaN or inf on part of the real line (written only as f(jnp.abs(x)) where that is safe)": "log log2 reciprocal divide",
        "builds arrays from sizes or constants, not per-row functions of the state": "arange array asarray eye full full_like linspace ones zeros zeros_like diag tril triu",
        "reshapes or reorders axes; the typed grammar keeps shapes fixed": "broadcast_to concatenate expand_dims ravel repeat reshape squeeze swapaxes take take_along_axis tile transpose newaxis",
        "matrix products and contractions: shapes the grammar does not track": "dot einsum matmul outer",
        "comparisons and logic: boolean outputs": "all any equal greater greater_equal less less_equal logical_and logical_not logical_or not_equal isfinite isnan where",
        "indices or orderings, not values": "argmax argmin argsort sort",
        "binary forms of the arithmetic the grammar writes with operators": "add subtract multiply maximum minimum mod hypot logaddexp clip nan_to_num",
        "other reductions the grammar does not need": "average median std var cumsum",
        "dtypes and constants": "float32 int32 pi e inf",
    },
    "jax.nn": {
        "log-probabilities or encodings, not weights": "log_softmax logsumexp one_hot",
    },
    "jnp.linalg": {"sqrt(sum of squares + eps) instead: its gradient at 0 is NaN": "norm"},
    "array": {
        "the body uses jnp functions, not array methods": "T all any argmax argmin astype clip cumsum dtype max mean min ndim prod ravel round shape size squeeze std sum swapaxes transpose var",
    },
    "builtins": {
        "the body writes no loops or builtin calls": "abs bool enumerate float int len list max min round sum tuple zip",
    },
}
EXCLUDED: dict[str, dict[str, str]] = {
    table: {name: why for why, names in groups.items() for name in names.split()}
    for table, groups in _EXCLUDED_GROUPS.items()
}


def sandbox_tables() -> dict[str, list[str]]:
    """The sandbox's whitelist, table by table: the one source of the grammar's names."""
    return {
        "jnp": list(sandbox.JNP_FUNCTIONS),
        "jax.nn": list(sandbox.JAX_NN_FUNCTIONS),
        "jnp.linalg": list(sandbox.JNP_LINALG_FUNCTIONS),
        "array": list(sandbox.ARRAY_ATTRIBUTES),
        "builtins": list(sandbox.SAFE_BUILTINS),
    }


def whitelist_mismatch() -> list[str]:
    """Every disagreement between the sandbox's whitelist and this module's classification (empty: agreed)."""
    problems = []
    for table, names in sandbox_tables().items():
        allowed = set(names)
        roles = ROLES.get(table, {})
        used = {n for group in roles.values() for n in group}
        excluded = set(EXCLUDED.get(table, {}))
        for name in sorted(allowed - used - excluded):
            problems.append(
                f"{table}.{name} is whitelisted by the sandbox but neither used nor excluded here"
            )
        for name in sorted((used | excluded) - allowed):
            problems.append(f"{table}.{name} is classified here but the sandbox does not whitelist it")
        for name in sorted(used & excluded):
            problems.append(f"{table}.{name} is both used and excluded here")
    return problems


def names(table: str, role: str) -> list[str]:
    """The names of ``role`` that the sandbox whitelists (so the grammar never names anything else)."""
    allowed = set(sandbox_tables()[table])
    return [n for n in ROLES[table].get(role, ()) if n in allowed]


# --- grammars as data ------------------------------------------------------------------------


class Ref(str):
    """A reference to a rule (a plain ``str`` in an alternative is a literal)."""


@dataclass
class Grammar:
    """Rules ``name -> alternatives``, each a list of literals (``str``) and rule references (``Ref``)."""

    rules: dict[str, list[list[str]]] = field(default_factory=dict)
    root: str = "root"

    def add(self, name: str, *alternatives) -> Ref:
        """Sets rule ``name`` (replacing any earlier one) to ``alternatives``: each a literal, a ``Ref``, or
        a list/tuple of them in sequence (an empty one makes the rule optional). Returns a ``Ref`` to it;
        ValueError without alternatives.
        """
        alts = [list(a) if isinstance(a, list | tuple) else [a] for a in alternatives]
        if not alts:
            raise ValueError(f"rule {name!r} has no alternatives")
        self.rules[name] = alts
        return Ref(name)

    def gbnf(self) -> str:
        """GBNF (llama.cpp's grammar format; xgrammar and vLLM's ``guided_grammar`` read it too)."""

        def item(x):
            return x.replace("_", "-") if isinstance(x, Ref) else json.dumps(x)

        def rule(alts):  # an empty alternative is written as an optional group: ( ... )?
            text = " | ".join(" ".join(item(x) for x in alt) for alt in alts if alt)
            return f"({text})?" if any(not alt for alt in alts) else text

        order = [self.root] + [n for n in self.rules if n != self.root]
        return "\n".join(f"{n.replace('_', '-')} ::= {rule(self.rules[n])}" for n in order)

    def sample(self, rng: random.Random) -> str:
        """A random sentence (every alternative equally likely); the grammars here are not recursive."""
        out: list[str] = []

        def expand(name: str, depth: int) -> None:
            if depth > 50:
                raise RecursionError(f"rule {name!r} nests more than 50 levels")
            for x in rng.choice(self.rules[name]):
                if isinstance(x, Ref):
                    expand(x, depth + 1)
                else:
                    out.append(x)

        expand(self.root, 0)
        return "".join(out)


# --- the TFCAF grammar ------------------------------------------------------------------------

CONSTANTS = ("0.1", "0.5", "1.0", "2.0", "3.0", "5.0", "10.0")
FENCE_END = "```"


def tfcaf_grammar(fields, gamma: int, head: str = "") -> Grammar:
    """The grammar of a TFCAF body over the named state view ``fields`` (``task.StateField``s).

    The sentence continues ``head`` (the fenced signature and view lines, which the
    local backend prefills) unless ``head`` is given here, in which case the
    sentence starts with it (servers that do not continue a prefill). It ends with
    the closing code fence.
    """
    g = Grammar()
    jnp_ = lambda n: f"jnp.{n}"  # noqa: E731
    nn_ = lambda n: f"jax.nn.{n}"  # noqa: E731
    agents = [f.name for f in fields if f.kind == "agents"]
    items = [f.name for f in fields if f.kind == "items"]
    rows = [f.name for f in fields if f.kind == "row"]
    unary = [jnp_(n) for n in names("jnp", "unary")] + [nn_(n) for n in names("jax.nn", "unary")]
    nonneg = [jnp_(n) for n in names("jnp", "nonneg")] + [nn_(n) for n in names("jax.nn", "nonneg")]
    of_abs = [jnp_(n) for n in names("jnp", "of_abs")]
    reduce = [jnp_(n) for n in names("jnp", "reduce")]
    q_reduce = [jnp_(n) for n in names("jnp", "q_reduce")]
    softmax = [nn_(n) for n in names("jax.nn", "normalise")]
    abs_ = "jnp.abs" if "abs" in names("jnp", "unary") else None

    const = g.add("const", *CONSTANTS)
    g.add("unary", *unary)
    if of_abs and abs_:
        g.add("of_abs", *of_abs)

    # [B, 1]: a row field, or a reduction of an agent or item field over axis 1
    r_atoms = [[r] for r in rows]
    if reduce:
        g.add("reduce", *reduce)
        if agents + items:
            g.add("wide", *(agents + items))
            r_atoms.append([Ref("reduce"), "(", Ref("wide"), ", axis=1, keepdims=True)"])
    if not r_atoms:
        raise ValueError("the state view has no field the grammar can use")
    r_atom = g.add("r_atom", *r_atoms)
    r_term_alts = [[r_atom], [const, " * ", r_atom], ["-", r_atom], [Ref("unary"), "(", r_atom, ")"]]
    if of_abs and abs_:
        r_term_alts.append([Ref("of_abs"), f"({abs_}(", r_atom, "))"])
    r_term = g.add("r_term", *r_term_alts)
    g.add("r_expr", [r_term], [r_term, " + ", r_term], [r_term, " - ", r_term], [r_term, " * ", r_term])

    # [B, n]: a per-agent field (or ones), shifted, scaled or transformed by [B, 1] terms
    ones = names("jnp", "ones")
    a_fields = agents or ([f"jnp.{ones[0]}(agent_qs)"] if ones else [])
    if not a_fields:
        raise ValueError("the state view has no per-agent field and the sandbox no ones_like")
    a_atom = g.add("a_atom", *a_fields)
    a_term_alts = [
        [a_atom],
        [const, " * ", a_atom],
        ["-", a_atom],
        [Ref("unary"), "(", a_atom, ")"],
        ["(", a_atom, " - ", r_atom, ")"],
        [r_atom, " * ", a_atom],
    ]
    if abs_:
        a_term_alts.append([a_atom, f" / (1.0 + {abs_}(", r_atom, "))"])
    if of_abs and abs_:
        a_term_alts.append([Ref("of_abs"), f"({abs_}(", a_atom, "))"])
    a_term = g.add("a_term", *a_term_alts)
    g.add(
        "a_expr",
        [a_term],
        [a_term, " + ", a_term],
        [a_term, " - ", a_term],
        [a_term, " * ", a_term],
        [a_term, " + ", r_term],  # [B, n] and [B, 1] broadcast to [B, n]
        [a_term, " - ", r_term],
    )

    # weights [B, n]: non-negative under the IGM gate
    w_alts = []
    for sm in softmax:
        w_alts += [[f"{sm}(score, axis=1)"], [const, f" * {sm}(score, axis=1)"]]
    if nonneg:
        g.add("nonneg", *nonneg)
        w_alts.append([const, " + ", Ref("nonneg"), "(score)"])
    if not gamma:
        w_alts += [["score"], [const, " + ", Ref("unary"), "(score)"], [const, " * score"]]
    if not w_alts:
        raise ValueError("the sandbox whitelists no function the weights can be built with")
    g.add("weights", *w_alts)

    # extra [B] terms: a bias from the state, a monotone reduction of agent_qs
    q_terms = [[" + ", const, " * ", f"{q}(agent_qs, axis=1)"] for q in q_reduce]
    if not gamma:
        q_terms += [[" - ", const, " * ", f"{q}(agent_qs, axis=1)"] for q in q_reduce]
    if q_terms:
        g.add("q_term", *q_terms)
    opt_q = [[], [Ref("q_term")]] if q_terms else [[]]
    g.add("tail", *opt_q)
    g.add("tail_b", *[[*b, *q] for b in ([" + b[:, 0]"], [" + ", const, " * b[:, 0]"]) for q in opt_q])

    ret = "    return jnp.sum(w * agent_qs, axis=1)"
    body = [
        "    score = ",
        Ref("a_expr"),
        "\n    w = ",
        Ref("weights"),
        "\n",
    ]
    g.add(
        "root",
        [*([head] if head else []), *body, ret, Ref("tail"), "\n" + FENCE_END],
        [
            *([head] if head else []),
            *body,
            "    b = ",
            Ref("r_expr"),
            "\n",
            ret,
            Ref("tail_b"),
            "\n" + FENCE_END,
        ],
    )
    return g


def gamma_grammar() -> Grammar:
    """The IGM question's answer: ``GAMMA: 0`` or ``GAMMA: 1``."""
    g = Grammar()
    g.add("root", ["GAMMA: ", Ref("bit")])
    g.add("bit", "0", "1")
    return g


def choice_grammar(n: int) -> Grammar:
    """The evaluator's pick among ``n`` candidates: ``CHOICE: k`` with ``k`` in 1..n. The 135M evaluator
    wrote no readable ``CHOICE: k`` line in free text, so the loop always took the first candidate."""
    if n < 1:
        raise ValueError(f"a choice needs at least one candidate, got {n}")
    g = Grammar()
    g.add("root", ["CHOICE: ", Ref("k")])
    g.add("k", *(str(k) for k in range(1, n + 1)))
    return g
