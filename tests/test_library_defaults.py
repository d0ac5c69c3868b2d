"""One source per default: the schema. A library parameter that stands for a
config key (named after it, or in conftest.CONFIG_ALIASES) has no default of
its own; every caller passes the config's value (the stages from their
options, tests through conftest.with_schema_defaults)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from conftest import CONFIG_ALIASES, OTHER_MEANING, config_params, function_name

import sarstack


def _library_functions():
    """Every function defined in a module of sarstack (the stages' cli aside)."""
    for m in pkgutil.walk_packages(sarstack.__path__, "sarstack."):
        if m.name.startswith("sarstack.cli") or m.name.endswith("__main__"):
            continue
        mod = importlib.import_module(m.name)
        for _, fn in inspect.getmembers(mod, inspect.isfunction):
            if fn.__module__ == mod.__name__:
                yield fn


def test_no_library_default_for_a_config_key():
    found, checked = [], 0
    for fn in _library_functions():
        params = inspect.signature(fn).parameters
        for p, key in config_params(fn).items():
            checked += 1
            if params[p].default is not inspect.Parameter.empty:
                found.append(f"sarstack.{function_name(fn)}({p}={params[p].default!r}): "
                             f"{key}'s default is the schema's")  # fmt: skip
    assert not found, "\n".join(found)
    assert checked >= 100


def test_the_lists_name_existing_parameters():
    """An alias or an exception left behind by a renamed function fails here."""
    params = {function_name(fn): set(inspect.signature(fn).parameters)
              for fn in _library_functions()}  # fmt: skip
    for fname, p in [*CONFIG_ALIASES, *OTHER_MEANING]:
        assert p in params.get(fname, set()), f"sarstack.{fname} has no parameter {p}"
