"""The sandbox for LLM-written code: a corpus of hostile and broken TFCAFs, each rejected, and good ones accepted."""

from __future__ import annotations

import textwrap

import jax.numpy as jnp
import numpy as np
import pytest

from credo.llm.sandbox import SandboxRejection, check_source, compile_restricted, strip_redundant_imports
from credo.qllm.checks import check_tfcaf


def fn(body: str, signature: str = "agent_qs, state") -> str:
    return f"def tfcaf({signature}):\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ") + "\n"


# Rejected by the syntax whitelist, before anything runs: (name, source, words the reason must contain)
HOSTILE = [
    ("dunder class walk", fn("return ().__class__.__bases__[0].__subclasses__()"), "'_'"),
    ("function globals", fn("return jnp.sum.__globals__['os'].system('id')"), "'_'"),
    ("builtins name", fn("return __builtins__['open']('/etc/passwd')"), "'_'"),
    ("import os", "import os\n" + fn("return agent_qs.sum(-1)"), "no imports"),
    ("import inside", fn("import subprocess\nreturn agent_qs.sum(-1)"), "no imports"),
    ("from import", "from os import system\n" + fn("return agent_qs.sum(-1)"), "no imports"),
    ("dunder import", fn("m = __import__('os')\nreturn agent_qs.sum(-1)"), "'_'"),
    ("eval", fn("return eval('agent_qs.sum(-1)')"), "eval"),
    ("exec", fn("exec('x = 1')\nreturn agent_qs.sum(-1)"), "exec"),
    ("open file", fn("open('/tmp/x', 'w')\nreturn agent_qs.sum(-1)"), "open"),
    ("read file by name", fn("f = open\nreturn agent_qs.sum(-1)"), "open"),
    ("getattr", fn("return getattr(jnp, 'sum')(agent_qs, -1)"), "getattr"),
    ("globals", fn("g = globals()\nreturn agent_qs.sum(-1)"), "globals"),
    ("type introspection", fn("t = type(agent_qs)\nreturn agent_qs.sum(-1)"), "type"),
    ("numpy", fn("return np.sum(agent_qs, -1)"), "use jnp"),
    ("socket", fn("s = socket.socket()\nreturn agent_qs.sum(-1)"), "not defined"),
    (
        "jax outside whitelist",
        fn("jax.config.update('jax_enable_x64', True)\nreturn agent_qs.sum(-1)"),
        "jax.config",
    ),
    ("jax debug callback", fn("jax.debug.callback(print, agent_qs)\nreturn agent_qs.sum(-1)"), "jax.debug"),
    ("jnp io", fn("jnp.save('/tmp/x', agent_qs)\nreturn agent_qs.sum(-1)"), "jnp.save is not available"),
    ("jnp load", fn("return jnp.load('/etc/passwd')"), "not available"),
    ("array method off list", fn("return agent_qs.tobytes()"), ".tobytes is not allowed"),
    ("while loop", fn("while True:\n    pass\nreturn agent_qs.sum(-1)"), "no while"),
    ("for over array", fn("for x in agent_qs:\n    pass\nreturn agent_qs.sum(-1)"), "range"),
    ("try", fn("try:\n    x = 1\nexcept Exception:\n    x = 2\nreturn agent_qs.sum(-1)"), "no try"),
    ("with", fn("with open('x') as f:\n    pass\nreturn agent_qs.sum(-1)"), "no with"),
    ("class", "class A:\n    pass\n" + fn("return agent_qs.sum(-1)"), "no classes"),
    ("global", fn("global Q\nreturn agent_qs.sum(-1)"), "no global"),
    ("decorator", "@jnp.vectorize\n" + fn("return agent_qs.sum(-1)"), "no decorators"),
    ("lambda call chain", fn("return (lambda: 1)()"), "by its name"),
    ("call of call", fn("return jnp.sum(agent_qs, -1).sum()()"), "by its name"),
    ("huge literal", fn("z = jnp.zeros(10**12)\nreturn agent_qs.sum(-1)"), "too large"),
    ("huge int", fn("n = 100000000000\nreturn agent_qs.sum(-1)"), "too large"),
    ("big power", fn("n = 10 ** 10 ** 10\nreturn agent_qs.sum(-1)"), "exponent"),
    ("list repetition", fn("x = [0] * 10000000\nreturn agent_qs.sum(-1)"), "repetition"),
    ("string repetition", fn("x = 'a' * 100\nreturn agent_qs.sum(-1)"), "repetition"),
    ("f-string", fn("x = f'{agent_qs}'\nreturn agent_qs.sum(-1)"), "f-strings"),
    ("dict", fn("d = {'a': 1}\nreturn agent_qs.sum(-1)"), "no dicts"),
    ("print", fn("print(agent_qs)\nreturn agent_qs.sum(-1)"), "print"),
    ("assign to a module", fn("jnp = 1\nreturn agent_qs.sum(-1)"), "do not assign"),
    ("attribute store", fn("agent_qs.shape = (1,)\nreturn agent_qs.sum(-1)"), "do not assign to attributes"),
    ("top-level call", "x = open('/etc/passwd')\n" + fn("return agent_qs.sum(-1)"), "numeric constants"),
    ("top-level expression", "jnp.save('x', 1)\n" + fn("return agent_qs.sum(-1)"), "top level"),
    ("walrus", fn("return (x := agent_qs).sum(-1)"), ":="),
    ("no tfcaf", "def mixer(agent_qs, state):\n    return agent_qs.sum(-1)\n", "named 'tfcaf'"),
    ("wrong arity", fn("return agent_qs.sum(-1)", signature="agent_qs"), "exactly 2"),
    ("syntax error", "def tfcaf(agent_qs, state)\n    return 1\n", "syntax error"),
    ("empty", "   \n", "empty"),
    (
        "annotation side effect",
        fn("return agent_qs.sum(-1)", signature="agent_qs: open('x'), state"),
        "annotations",
    ),
    ("star args", fn("return agent_qs.sum(-1)", signature="*args"), "*args"),
    ("too long", "# " + "x" * 30_000 + "\n" + fn("return agent_qs.sum(-1)"), "limit"),
    ("deep nesting", fn("return " + "(" * 400 + "agent_qs" + ")" * 400 + ".sum(-1)"), ""),
]


@pytest.mark.parametrize("name, source, words", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_code_is_rejected_by_the_whitelist(name, source, words):
    with pytest.raises(SandboxRejection) as err:
        check_source(source, "tfcaf", 2)
    assert words in str(err.value)
    assert "\n" not in str(err.value)  # one line, for the coder LLM


# Pass the whitelist, fail when run (in the checker's limited process): (name, source, failing check, words)
BROKEN = [
    ("nan factory", fn("return jnp.log(state[:, 0] - state[:, 0]) + agent_qs.sum(-1)"), "finite on", "NaN"),
    (
        "division by the state",
        fn("return agent_qs.sum(-1) / state.sum(-1)"),
        "finite on extreme inputs",
        "NaN or inf",
    ),
    ("exp overflow", fn("return agent_qs.sum(-1) * jnp.exp(agent_qs.sum(-1))"), "finite on extreme", "inf"),
    ("sqrt at zero", fn("return jnp.sqrt(jnp.abs(agent_qs)).sum(-1)"), "finite gradients", "NaN or inf"),
    ("wrong shape", fn("return agent_qs * 2.0"), "output shape", "[B]"),
    ("scalar out", fn("return jnp.sum(agent_qs)"), "output shape", "[B]"),
    ("integer out", fn("return jnp.argmax(agent_qs, -1)"), "output shape", "float"),
    (
        "mixes batch rows",
        fn("return agent_qs.sum(-1) / (jnp.abs(agent_qs).sum() + 1.0)"),
        "batch rows independent",
        "other rows",
    ),
    ("ignores agent_qs", fn("return state[:, 0] * 0.0 + 1.0"), "depends on agent_qs", "cannot learn"),
    ("not monotone", fn("return agent_qs[:, 0] - agent_qs[:, 1]"), "monotone", "non-negative"),
    (
        "state-dependent sign",
        fn("w = jnp.tanh(state[:, :2])\nreturn jnp.sum(w * agent_qs, -1)"),
        "monotone",
        "< 0",
    ),
    (
        "huge allocation",
        fn("z = jnp.zeros((100000, 100000))\nreturn agent_qs.sum(-1) + z.sum()"),
        "memory",
        "limit",
    ),
    ("raises on call", fn("return agent_qs.sum(-1) @ jnp.ones((3, 3))"), "traces with jax", "raised"),
    ("wrong batch axis", fn("return agent_qs.sum(-1) @ state"), "output shape", "[B]"),
    (
        "endless recursion",
        "def helper(x):\n    return helper(x)\n" + fn("return helper(agent_qs).sum(-1)"),
        "traces with jax",
        "RecursionError",
    ),
    (
        "python memory bomb",
        fn("w = [list(range(100000)) for i in range(100000)]\nreturn agent_qs.sum(-1)"),
        "traces with jax",
        "MemoryError",
    ),
]


@pytest.mark.parametrize("name, source, check, words", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_code_is_rejected_when_run(name, source, check, words):
    report = check_tfcaf(source, 2, 4, igm=True, time_limit=60)
    assert not report.passed
    failed = next(c for c in report.checks if not c.passed)
    assert check in failed.name, report.format()
    assert words in failed.detail, report.format()


def test_an_endless_loop_hits_the_time_limit():
    source = fn(
        "x = 0\nfor i in range(1000000):\n    for j in range(1000000):\n        x = x + 1\nreturn agent_qs.sum(-1)"
    )
    report = check_tfcaf(source, 2, 4, time_limit=8)
    assert not report.passed and report.checks[-1].name == "time limit"
    assert "8 s" in report.reason


GOOD = [
    ("vdn", fn("return jnp.sum(agent_qs, axis=-1)")),
    (
        "softmax weights",
        fn("w = jax.nn.softmax(state[:, :2], axis=-1)\nreturn jnp.sum(w * agent_qs, axis=-1)"),
    ),
    (
        "loop and helper, [B, 1] out",
        "EPS = 1e-6\n\ndef weight(x):\n    return jnp.abs(x) + EPS\n\n"
        + fn(
            "q = 0.0\nfor i in range(agent_qs.shape[1]):\n    q = q + weight(state[:, i]) * agent_qs[:, i]\nreturn q[:, None]"
        ),
    ),
    ("redundant import", "import jax.numpy as jnp\n" + fn("return agent_qs.mean(-1) * 2.0")),
]


@pytest.mark.parametrize("name, source", GOOD, ids=[g[0] for g in GOOD])
def test_good_code_passes_every_check(name, source):
    report = check_tfcaf(source, 2, 4, igm=True)
    assert report.passed, report.format()
    assert [c.name for c in report.checks][-1] == "monotone in every Q_i (IGM)"


def test_the_igm_gate_off_accepts_negative_weights():
    source = fn("return agent_qs[:, 0] - 0.5 * agent_qs[:, 1]")
    assert not check_tfcaf(source, 2, 4, igm=True).passed
    report = check_tfcaf(source, 2, 4, igm=False)
    assert report.passed and "not required" in report.checks[-1].detail


def test_checks_use_the_env_states_given():
    # fine on random normal states, NaN on states with a zero in slot 0 (as real LBF states have)
    source = fn("return agent_qs.sum(-1) * jnp.log(jnp.abs(state[:, 0]) + 1.0) / jnp.abs(state[:, 0])")
    states = np.zeros((8, 4), np.float32)
    report = check_tfcaf(source, 2, 4, states=states)
    assert not report.passed and "env-like states" in report.reason


def test_the_restricted_namespace_holds_only_the_whitelist():
    f = compile_restricted(fn("return jnp.sum(agent_qs, -1)"), "tfcaf", 2)
    g = f.__globals__
    assert set(g) >= {"jnp", "jax", "__builtins__", "tfcaf"}
    assert "open" not in g["__builtins__"] and "getattr" not in g["__builtins__"]
    with pytest.raises(ImportError, match="not allowed"):  # there for NumPy's and JAX's C code only
        g["__builtins__"]["__import__"]("os")
    assert not hasattr(g["jnp"], "save") and not hasattr(g["jax"], "config")
    np.testing.assert_allclose(f(jnp.ones((3, 2)), jnp.zeros((3, 4))), [2.0, 2.0, 2.0])


def test_only_imports_of_what_is_provided_are_dropped():
    text, dropped = strip_redundant_imports(
        "import jax.numpy as jnp\nimport os\nimport jax\n" + fn("return 1")
    )
    assert dropped == ["import jax.numpy as jnp", "import jax"]
    assert "import os" in text
