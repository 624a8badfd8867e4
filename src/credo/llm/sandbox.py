"""A sandbox for numeric code written by an LLM: a syntax whitelist, then a namespace that holds nothing else.

LLM-written code is untrusted input. Before any of it runs:

1. ``check_source`` parses it and walks every node. Only arithmetic,
   comparisons, conditionals, assignments, ``for`` over ``range``/``enumerate``/
   ``zip``, function definitions and calls of whitelisted names survive; imports,
   classes, ``while``, ``try``, ``with``, ``global``, ``lambda`` defaults, string
   tricks and every name or attribute that starts with ``_`` (``__class__``,
   ``__globals__``, ``__subclasses__`` ...) are rejected, as are ``eval``,
   ``exec``, ``open``, ``getattr`` and the other builtins that reach outside.
   Attributes are allowed only as ``jnp.<numeric function>``,
   ``jax.nn.<activation>`` and a short list of array attributes
   (``x.shape``, ``x.sum`` ...). The check itself is bounded, whatever the text:
   at most ``MAX_SOURCE_CHARS`` characters, ``MAX_NODES`` nodes nested at most
   ``MAX_DEPTH`` deep (deeper code would exhaust the recursion of the checker or
   of ``compile``), and constant arithmetic is folded only on integers of at
   most ``MAX_CONSTANT_BITS`` bits (a tower of powers is refused, not computed).
   Anything that is not a string is refused too.
2. ``compile_restricted`` executes the checked code in a namespace whose
   ``__builtins__`` is a dozen pure functions and whose ``jnp`` and ``jax`` are
   plain namespaces holding only the whitelisted functions, so a name outside
   the whitelist does not exist there. (The namespace alone is no wall: any
   function object leads to its module's globals through ``__globals__``; the
   ban on ``_`` names in step 1 is what closes that path.)

Running the compiled function is the caller's business, in a separate process
with time and memory limits (``credo.qllm.checks``). Every rejection is one line
that says what was wrong and what to write instead, so a coder LLM can act on it.
"""

from __future__ import annotations

import ast
import builtins
import difflib
import types
from dataclasses import dataclass

import jax
import jax.numpy as jnp

MAX_SOURCE_CHARS = 20_000
MAX_NODES = 5_000
# Nesting depth of the syntax tree: deeper code would exhaust the recursion of this checker or of
# compile() (a RecursionError instead of a rejection); real credit functions nest a dozen levels.
MAX_DEPTH = 100
MAX_INT = 10**7  # larger integer literals could only size a huge allocation or loop
MAX_POW_EXPONENT = 64  # constant exponents beyond this build huge Python integers
# Folding a constant expression here never touches an integer wider than this: every operand
# is at most MAX_CONSTANT_BITS wide, so one step yields at most 64 times that, and a tower of
# powers (((9**64)**64)**64 ...) is refused at its second level instead of running for hours.
MAX_CONSTANT_BITS = 64

JNP_FUNCTIONS = sorted(
    """abs absolute add all any arange argmax argmin argsort array asarray average broadcast_to ceil clip
    concatenate cos cosh cumprod cumsum diag divide dot einsum equal exp expand_dims expm1 eye float32 floor
    full full_like greater greater_equal hypot int32 isfinite isnan less less_equal linspace log log1p log2
    logaddexp logical_and logical_not logical_or matmul max maximum mean median min minimum mod multiply
    nan_to_num negative not_equal ones ones_like outer pi power prod ravel reciprocal repeat reshape round
    sign sin sinh sort sqrt square squeeze stack std subtract sum swapaxes take take_along_axis tan tanh tile
    transpose tril triu var where zeros zeros_like e inf newaxis""".split()
)
JNP_LINALG_FUNCTIONS = ["norm"]
JAX_NN_FUNCTIONS = sorted(
    "celu elu gelu leaky_relu log_sigmoid log_softmax logsumexp one_hot relu relu6 sigmoid silu softmax softplus swish tanh".split()
)
ARRAY_ATTRIBUTES = sorted(
    """T all any argmax argmin astype clip cumsum dtype max mean min ndim prod ravel reshape round shape size
    squeeze std sum swapaxes transpose var""".split()
)
SAFE_BUILTINS = {
    name: getattr(builtins, name)
    for name in "abs bool enumerate float int len list max min range round sum tuple zip".split()
}
FORBIDDEN_NAMES = {
    "eval": "eval runs arbitrary code",
    "exec": "exec runs arbitrary code",
    "compile": "compile builds arbitrary code",
    "open": "no file access",
    "getattr": "no dynamic attribute access",
    "setattr": "no dynamic attribute access",
    "delattr": "no dynamic attribute access",
    "globals": "no access to namespaces",
    "locals": "no access to namespaces",
    "vars": "no access to namespaces",
    "dir": "no introspection",
    "type": "no introspection",
    "object": "no introspection",
    "super": "no introspection",
    "input": "no I/O",
    "print": "no I/O",
    "breakpoint": "no debugger",
    "help": "no I/O",
    "memoryview": "no raw memory",
    "np": "use jnp (jax.numpy) instead of np: NumPy cannot trace through JAX",
    "numpy": "use jnp (jax.numpy) instead of numpy",
    "torch": "use jnp (jax.numpy); torch is not available",
    "math": "use jnp (jnp.exp, jnp.log, jnp.pi ...) instead of math",
    "os": "no operating-system access",
    "sys": "no interpreter access",
}
MODULES = {"jnp": "jax.numpy", "jax": "jax"}

_STATEMENTS = (
    ast.Module,
    ast.FunctionDef,
    ast.Return,
    ast.Assign,
    ast.AugAssign,
    ast.AnnAssign,
    ast.If,
    ast.For,
    ast.Expr,
    ast.Pass,
)
_EXPRESSIONS = (
    ast.BinOp,
    ast.UnaryOp,
    ast.BoolOp,
    ast.Compare,
    ast.IfExp,
    ast.Call,
    ast.Attribute,
    ast.Subscript,
    ast.Slice,
    ast.Tuple,
    ast.List,
    ast.ListComp,
    ast.GeneratorExp,
    ast.comprehension,
    ast.Name,
    ast.Constant,
    ast.keyword,
    ast.arguments,
    ast.arg,
    ast.Lambda,
)
_CONTEXTS_AND_OPERATORS = (
    ast.Load,
    ast.Store,
    ast.operator,
    ast.unaryop,
    ast.boolop,
    ast.cmpop,
)
ALLOWED_NODES = _STATEMENTS + _EXPRESSIONS + _CONTEXTS_AND_OPERATORS
_WHY_NOT = {
    ast.Import: "no imports: jnp (jax.numpy) and jax.nn are already available",
    ast.ImportFrom: "no imports: jnp (jax.numpy) and jax.nn are already available",
    ast.While: "no while loops: use jnp operations or a for loop over range(n)",
    ast.ClassDef: "no classes: write plain functions",
    ast.Try: "no try/except: the code must not raise",
    ast.With: "no with statements",
    ast.Global: "no global or nonlocal",
    ast.Nonlocal: "no global or nonlocal",
    ast.Delete: "no del",
    ast.Raise: "no raise",
    ast.Assert: "no assert",
    ast.Yield: "no generators",
    ast.YieldFrom: "no generators",
    ast.Await: "no async code",
    ast.AsyncFunctionDef: "no async code",
    ast.JoinedStr: "no f-strings",
    ast.Dict: "no dicts: use arrays",
    ast.Set: "no sets: use arrays",
    ast.DictComp: "no dicts: use arrays",
    ast.SetComp: "no sets: use arrays",
    ast.Starred: "no star unpacking",
    ast.NamedExpr: "no := assignments",
}
ALLOWED_ITERATORS = ("range", "enumerate", "zip")


class SandboxRejection(ValueError):
    """Code the sandbox refuses to run; ``str()`` is one line for a coder LLM."""


@dataclass(frozen=True)
class _Where:
    line: int

    def __str__(self) -> str:
        return f"line {self.line}"


def _reject(node: ast.AST, why: str) -> SandboxRejection:
    line = getattr(node, "lineno", 0)
    return SandboxRejection(f"{_Where(line)}: {why}" if line else why)


def _dotted(node: ast.AST) -> list[str] | None:
    """['jnp', 'linalg', 'norm'] for jnp.linalg.norm; None if the chain does not start at a name."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id, *reversed(parts)]
    return None


def _module_path_ok(parts: list[str]) -> str | None:
    """None if ``parts`` (a dotted path from jnp or jax) is whitelisted, else the reason."""
    head, rest = parts[0], parts[1:]
    if head == "jax":
        if not rest:
            return None
        if rest[0] == "numpy":
            return _module_path_ok(["jnp", *rest[1:]])
        if rest[0] == "nn":
            if len(rest) == 1 or (len(rest) == 2 and rest[1] in JAX_NN_FUNCTIONS):
                return None
            name = rest[1] if len(rest) > 1 else ""
            return f"jax.nn.{name} is not available.{_suggest(name, JAX_NN_FUNCTIONS)} Available: jax.nn.{', jax.nn.'.join(JAX_NN_FUNCTIONS)}"
        return f"jax.{rest[0]} is not available: use jnp (jax.numpy) and jax.nn only"
    # head == "jnp"
    if not rest:
        return None
    if rest[0] == "linalg":
        if len(rest) == 1 or (len(rest) == 2 and rest[1] in JNP_LINALG_FUNCTIONS):
            return None
        return f"jnp.linalg.{rest[1]} is not available; only jnp.linalg.norm is"
    if len(rest) == 1 and rest[0] in JNP_FUNCTIONS:
        return None
    return f"jnp.{'.'.join(rest)} is not available.{_suggest(rest[0], JNP_FUNCTIONS)}"


def _suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=2)
    return f" Did you mean {' or '.join(close)}?" if close else ""


def _describe_int(value: int) -> str:
    """``value`` for a message, without converting a huge integer to text or float."""
    if value.bit_length() <= 64:
        return f"{value:,}"
    return f"of about 10^{int(value.bit_length() * 0.30103)}"


def _constant_value(node: ast.AST):
    """The value of a literal arithmetic expression (3, -2, 2 ** 10), or None if it is not one.

    Bounded: an integer operand wider than ``MAX_CONSTANT_BITS`` bits, or a power with an
    exponent above ``MAX_POW_EXPONENT``, is a rejection before anything is computed.
    """
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    ):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        v = _constant_value(node.operand)
        return None if v is None else (-v if isinstance(node.op, ast.USub) else v)
    if isinstance(node, ast.BinOp):
        left, right = _constant_value(node.left), _constant_value(node.right)
        if left is None or right is None:
            return None
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_POW_EXPONENT:
            shown = _describe_int(right) if isinstance(right, int) else f"{right:.3g}"
            raise _reject(
                node, f"constant power with exponent {shown}: exponents above {MAX_POW_EXPONENT} are refused"
            )
        for v in (left, right):
            if isinstance(v, int) and v.bit_length() > MAX_CONSTANT_BITS:
                raise _reject(node, f"integer constant {_describe_int(v)} is too large (limit {MAX_INT:,})")
        try:
            op = {ast.Add: left.__add__, ast.Sub: left.__sub__, ast.Mult: left.__mul__, ast.Pow: left.__pow__}
            f = op.get(type(node.op))
            value = f(right) if f else None
        except (OverflowError, ZeroDivisionError, ValueError):
            return None
        if value is NotImplemented or not isinstance(value, int | float):
            return None  # a complex power of a negative number: not a usable constant
        return value
    return None


def _depth(tree: ast.AST) -> int:
    """The nesting depth of ``tree``, without recursion (the tree may be deeper than Python's stack)."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > MAX_DEPTH:
            break
        stack.extend((child, d + 1) for child in ast.iter_child_nodes(node))
    return deepest


class _Checker(ast.NodeVisitor):
    def __init__(self, defined: set[str]):
        self.defined = defined  # names the code itself binds (arguments, assignments, functions)

    def generic_visit(self, node):
        if not isinstance(node, ALLOWED_NODES):
            why = _WHY_NOT.get(type(node), f"{type(node).__name__} is not allowed")
            raise _reject(node, why)
        super().generic_visit(node)

    def visit_Name(self, node: ast.Name):
        name = node.id
        if name.startswith("_"):
            raise _reject(node, f"name {name!r}: names starting with '_' are not allowed")
        if name in FORBIDDEN_NAMES:
            raise _reject(node, f"{name!r} is not allowed: {FORBIDDEN_NAMES[name]}")
        if (
            isinstance(node.ctx, ast.Load)
            and name not in self.defined
            and name not in MODULES
            and name not in SAFE_BUILTINS
        ):
            known = sorted(self.defined | set(MODULES) | set(SAFE_BUILTINS))
            raise _reject(
                node,
                f"name {name!r} is not defined.{_suggest(name, known)} Available: your arguments and variables, "
                f"jnp, jax.nn, and the builtins {', '.join(SAFE_BUILTINS)}",
            )
        if isinstance(node.ctx, ast.Store) and (name in MODULES or name in SAFE_BUILTINS):
            raise _reject(node, f"do not assign to {name!r}: it names a provided module or builtin")

    def visit_Attribute(self, node: ast.Attribute):
        # the most telling reason first: a private attribute anywhere in the chain
        for sub in ast.walk(node):
            if isinstance(sub, ast.Attribute) and sub.attr.startswith("_"):
                raise _reject(sub, f"attribute {sub.attr!r}: attributes starting with '_' are not allowed")
        if isinstance(node.ctx, ast.Store):
            raise _reject(node, "do not assign to attributes")
        parts = _dotted(node)
        if parts and parts[0] in MODULES and parts[0] not in self.defined:
            why = _module_path_ok(parts)
            if why:
                raise _reject(node, why)
            return  # a whitelisted module path: nothing below it to check
        self.visit(node.value)  # an unknown name at the root is the better reason
        if node.attr not in ARRAY_ATTRIBUTES:
            raise _reject(
                node,
                f"attribute .{node.attr} is not allowed on arrays.{_suggest(node.attr, ARRAY_ATTRIBUTES)} "
                f"Allowed: .{', .'.join(ARRAY_ATTRIBUTES)}",
            )

    def visit_Call(self, node: ast.Call):
        self.generic_visit(node)  # what is called, and with what, first: their reasons are the telling ones
        if not isinstance(node.func, ast.Name | ast.Attribute):
            raise _reject(
                node, "call a function by its name (e.g. jnp.sum(x)), not the result of an expression"
            )

    def visit_For(self, node: ast.For):
        it = node.iter
        if not (
            isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id in ALLOWED_ITERATORS
        ):
            raise _reject(node, "for loops may only run over range(...), enumerate(...) or zip(...)")
        if node.orelse:
            raise _reject(node, "no for ... else")
        self.generic_visit(node)

    def visit_If(self, node: ast.If):
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef):
        if node.decorator_list:
            raise _reject(node, "no decorators")
        a = node.args
        if a.vararg or a.kwarg:
            raise _reject(node, "no *args or **kwargs")
        if node.returns is not None or any(x.annotation is not None for x in a.args + a.kwonlyargs):
            # annotations are evaluated at definition time; they buy nothing here
            raise _reject(node, "no type annotations in the signature")
        for d in a.defaults + [d for d in a.kw_defaults if d is not None]:
            if _constant_value(d) is None and not (
                isinstance(d, ast.Constant) and d.value in (None, True, False)
            ):
                raise _reject(node, "argument defaults must be numbers, True, False or None")
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign):
        raise _reject(node, "no annotated assignments: write x = ... without a type")

    def visit_Constant(self, node: ast.Constant):
        v = node.value
        if isinstance(v, bool) or v is None or v is Ellipsis:
            return
        if isinstance(v, int) and abs(v) > MAX_INT:
            raise _reject(node, f"integer literal {v} is too large (limit {MAX_INT:,})")
        if isinstance(v, str) and len(v) > 500:
            raise _reject(node, "string literals longer than 500 characters are not allowed")
        if isinstance(v, bytes | complex):
            raise _reject(node, f"{type(v).__name__} literals are not allowed")

    def visit_BinOp(self, node: ast.BinOp):
        value = _constant_value(node)  # refuses constant powers that would build huge integers
        if isinstance(value, int) and abs(value) > MAX_INT:
            raise _reject(node, f"integer constant {_describe_int(value)} is too large (limit {MAX_INT:,})")
        sequences = (ast.List, ast.Tuple, ast.ListComp)
        is_text = lambda x: isinstance(x, ast.Constant) and isinstance(x.value, str)  # noqa: E731
        if isinstance(node.op, ast.Mult) and any(
            isinstance(x, sequences) or is_text(x) for x in (node.left, node.right)
        ):
            raise _reject(node, "no sequence repetition ([x] * n): use jnp.full, jnp.ones or jnp.tile")
        self.generic_visit(node)

    def visit_Expr(self, node: ast.Expr):
        # a bare expression statement is a docstring or dead code; calls for effect have no place here
        self.visit(node.value)
        if not (isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            raise _reject(node, "a statement that is only an expression does nothing; assign or return it")


def _bound_names(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.FunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return names


def check_source(source: str, entry: str, n_args: int) -> ast.Module:
    """The parsed module if ``source`` passes the whitelist and defines ``entry(n_args positional)``.

    Raises ``SandboxRejection`` with a one-line reason otherwise.
    """
    if not isinstance(source, str):
        raise SandboxRejection(f"the code must be text (a Python source string), not {type(source).__name__}")
    if not source.strip():
        raise SandboxRejection("the code is empty")
    if len(source) > MAX_SOURCE_CHARS:
        raise SandboxRejection(
            f"the code is {len(source):,} characters long; the limit is {MAX_SOURCE_CHARS:,}"
        )
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        where = f"line {err.lineno}: " if err.lineno else ""
        raise SandboxRejection(f"{where}syntax error: {err.msg}") from None
    except (ValueError, RecursionError, MemoryError) as err:
        why = "it nests too deeply" if isinstance(err, RecursionError) else type(err).__name__
        raise SandboxRejection(f"the code cannot be parsed: {why}") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise SandboxRejection(f"the code has more than {MAX_NODES} syntax nodes; write something shorter")
    if _depth(tree) > MAX_DEPTH:
        raise SandboxRejection(
            f"the code nests expressions more than {MAX_DEPTH} levels deep; split them into several assignments"
        )
    try:
        return _check_tree(tree, entry, n_args)
    except (RecursionError, MemoryError) as err:  # a backstop: the bounds above should leave none
        raise SandboxRejection(f"the code is too complex to check ({type(err).__name__})") from None


def _check_tree(tree: ast.Module, entry: str, n_args: int) -> ast.Module:
    for stmt in tree.body:
        if (
            isinstance(stmt, ast.Expr)
            and isinstance(stmt.value, ast.Constant)
            and isinstance(stmt.value.value, str)
        ):
            continue  # module docstring
        if not isinstance(stmt, ast.FunctionDef | ast.Assign):
            why = _WHY_NOT.get(
                type(stmt), "only function definitions and constant assignments may stand at the top level"
            )
            raise _reject(stmt, why)
        if isinstance(stmt, ast.Assign) and _constant_value(stmt.value) is None:
            raise _reject(stmt, "top-level assignments must be numeric constants (e.g. EPS = 1e-6)")
    _Checker(_bound_names(tree)).visit(tree)
    defs = {s.name: s for s in tree.body if isinstance(s, ast.FunctionDef)}
    if entry not in defs:
        raise SandboxRejection(
            f"the code must define a function named {entry!r}"
            + (f"; it defines {', '.join(defs)}" if defs else "")
        )
    args = defs[entry].args
    if len(args.posonlyargs + args.args) - len(args.defaults) != n_args or args.kwonlyargs:
        raise _reject(defs[entry], f"{entry} must take exactly {n_args} positional arguments")
    return tree


_INTERNAL_IMPORTS = ("jax", "jaxlib", "numpy", "ml_dtypes", "opt_einsum", "scipy")


def _internal_import(name, globals=None, locals=None, fromlist=(), level=0):
    """``__import__`` for the C code of NumPy and JAX only.

    C code that imports lazily looks ``__import__`` up in the builtins of the
    Python frame that called it, which is the checked code's frame. Checked code
    itself cannot name ``__import__`` (no ``_`` names); this serves only those
    internal imports, of the numeric libraries.
    """
    if level == 0 and name.partition(".")[0] in _INTERNAL_IMPORTS:
        return builtins.__import__(name, globals, locals, fromlist, level)
    raise ImportError(f"import of {name!r} is not allowed in LLM-written code")


def _namespace() -> dict:
    """Fresh globals for checked code: a dozen builtins and whitelisted numerics, nothing else."""

    def ns(module, names):
        return types.SimpleNamespace(**{n: getattr(module, n) for n in names if hasattr(module, n)})

    np_ns = ns(jnp, JNP_FUNCTIONS)
    np_ns.linalg = ns(jnp.linalg, JNP_LINALG_FUNCTIONS)
    jax_ns = types.SimpleNamespace(nn=ns(jax.nn, JAX_NN_FUNCTIONS), numpy=np_ns)
    return {"__builtins__": {**SAFE_BUILTINS, "__import__": _internal_import}, "jnp": np_ns, "jax": jax_ns}


def compile_restricted(source: str, entry: str, n_args: int):
    """The function ``entry`` of ``source``, after ``check_source``, defined in the restricted namespace."""
    tree = check_source(source, entry, n_args)
    code = compile(tree, "<llm-code>", "exec")
    namespace = _namespace()
    exec(code, namespace)  # noqa: S102 - checked code, restricted globals (see module docstring)
    fn = namespace.get(entry)
    if not callable(fn):
        raise SandboxRejection(f"{entry} is not a function")
    return fn


def strip_redundant_imports(source: str) -> tuple[str, list[str]]:
    """``source`` without import lines of what the sandbox already provides (jax, jnp), and those lines.

    LLMs write ``import jax.numpy as jnp`` out of habit; it asks for nothing the
    namespace lacks, so dropping it is safe. Every other import stays (and is rejected).
    """
    harmless = {"import jax", "import jax.numpy as jnp", "from jax import numpy as jnp", "import jax.nn"}
    kept, dropped = [], []
    for line in source.splitlines():
        (dropped if line.strip() in harmless else kept).append(line)
    return "\n".join(kept), dropped
