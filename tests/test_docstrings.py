"""Every public name of the API reference has a docstring (issue 19).

``make docs`` builds the reference with pdoc from the docstrings of the modules in the Makefile's
``API_MODULES``; a public function, class or method without one shows up there as a bare
signature. This test reads the same list from the Makefile (so the two cannot drift) and checks,
in each module, the public functions and classes defined there and those its ``__all__``
re-exports (pdoc documents both on the module's page), with their public methods and properties.
It only imports the modules: nothing is compiled.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import re
import sys
import types
from pathlib import Path

import pytest

MAKEFILE = Path(__file__).resolve().parent.parent / "Makefile"


def api_modules() -> list[str]:
    """The Makefile's ``API_MODULES``, its backslash-continued lines joined."""
    text = MAKEFILE.read_text().replace("\\\n", " ")
    m = re.search(r"^API_MODULES\s*:?=(.*)$", text, re.M)
    assert m, f"no API_MODULES variable in {MAKEFILE}"
    modules = m.group(1).split()
    assert modules, f"API_MODULES in {MAKEFILE} is empty"
    return modules


def _has_doc(obj) -> bool:
    if inspect.isclass(obj):
        doc = obj.__dict__.get("__doc__")  # the class's own, not a base class's
        # dataclasses and NamedTuples without a docstring get their signature, "Name(a, b)", as one
        if isinstance(doc, str) and re.fullmatch(rf"{re.escape(obj.__name__)}\(.*\)", doc.strip(), re.S):
            return False
    else:
        doc = getattr(obj, "__doc__", None)
    return isinstance(doc, str) and bool(doc.strip())


def _methods(cls) -> dict[str, object]:
    """The public methods and properties defined in ``cls`` itself (inherited ones are the base's)."""
    out = {}
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(value, staticmethod | classmethod):
            out[name] = value.__func__
        elif isinstance(value, property):
            out[name] = value.fget
        elif isinstance(value, functools.cached_property):
            out[name] = value.func
        elif inspect.isfunction(value):
            out[name] = value
    return out


def undocumented(module_name: str) -> list[str]:
    """``module.name`` of every public function, class, method and property of the module's page
    that has no docstring."""
    module = importlib.import_module(module_name)
    missing = [] if _has_doc(module) else [f"{module_name} (the module)"]
    exported = set(getattr(module, "__all__", ()))
    names = sorted(exported | {n for n in vars(module) if not n.startswith("_")})
    for name in names:
        obj = getattr(module, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        if name not in exported and getattr(obj, "__module__", None) != module_name:
            continue  # imported for use here, documented (or not) where it is defined
        if not _has_doc(obj):
            missing.append(f"{module_name}.{name}")
        if inspect.isclass(obj):
            for method, func in _methods(obj).items():
                if not _has_doc(func):
                    missing.append(f"{module_name}.{name}.{method}")
    return missing


def test_api_modules_parsed_from_the_makefile():
    modules = api_modules()
    assert "credo" in modules and "credo.api" in modules, modules
    assert len(modules) == len(set(modules)), f"API_MODULES lists a module twice: {modules}"


@pytest.mark.parametrize("module_name", api_modules())
def test_public_names_have_docstrings(module_name):
    missing = undocumented(module_name)
    assert not missing, (
        f"{len(missing)} public name(s) of the API reference have no docstring (make docs shows them "
        "bare):\n  " + "\n  ".join(missing)
    )


def test_the_check_sees_a_missing_docstring():
    """The check itself: a function, a dataclass, a method and a property without docstrings are found."""
    module = types.ModuleType("credo_fake_api")

    def documented():
        """Has one."""

    def bare():
        pass

    @dataclasses.dataclass
    class Record:
        x: int = 0

    class Thing:
        """Has one."""

        def method(self):
            pass

        @property
        def value(self):
            return 1

        def _private(self):
            pass

    for obj in (documented, bare, Record, Thing):
        obj.__module__ = module.__name__
        setattr(module, obj.__name__, obj)
    module.__doc__ = "A fake module."
    module.Path = Path  # imported, not defined here: not checked
    sys.modules[module.__name__] = module
    try:
        assert undocumented(module.__name__) == [
            "credo_fake_api.Record",
            "credo_fake_api.Thing.method",
            "credo_fake_api.Thing.value",
            "credo_fake_api.bare",
        ]
    finally:
        del sys.modules[module.__name__]
