"""One source per parameter: the schema holds every default. The stages'
options have no defaults of their own (their config-driven ones come from
sarstack.options, tests/test_options.py), and a library default that stands for
a config key equals the schema's."""

from __future__ import annotations

import importlib
import inspect

import pytest
from conftest import schema_defaults

from sarstack import cli

# Stage options that no config key drives (the rules set them from the job).
NOT_CONFIG = {"--threads", "--strip", "--column", "--help", "--verbose"}


def _leaves(cfg: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for k, v in cfg.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_leaves(v, f"{key}."))
        else:
            out[key] = v
    return out


@pytest.mark.parametrize("stage", cli.STAGES)
def test_stage_options_have_no_defaults_of_their_own(stage):
    parser = importlib.import_module(f"sarstack.cli.{stage}").create_parser()
    for action in parser._actions:
        flag = action.option_strings[-1] if action.option_strings else action.dest
        if flag in NOT_CONFIG or action.default in (None, False):
            continue
        pytest.fail(f"sarstack {stage} {flag} has a default of its own: {action.default!r}")


# Library parameters named after a config key (by its last part) must default
# to the schema's value (or have no default). Ambiguous names (block_shape: the
# top level or insar's) may match any of their keys.
MODULES = ["dates", "insar", "io", "plots", "refpoint", "rtc", "velocity", "xcorr", "closure",
           "reflectors"]
# Same name, another quantity: (module, function, parameter) and why.
OTHER_MEANING = {
    ("xcorr", "prepare_tiles", "scale"): "the scale tiles are correlated in, not the files' scale",
    ("xcorr", "register_tiles", "scale"): "as prepare_tiles",
    ("xcorr", "tile_products", "scale"): "as prepare_tiles",
    ("io", "write_raster", "nodata"): "the nodata tag an output gets, not the scenes' rtc.nodata",
}
# Named explicitly where the parameter's name differs from the key's.
EXPLICIT = [
    ("refpoint", "select_reference_point", "threshold", "insar.reference_threshold"),
    ("insar", "reference_phase", "window", "insar.reference_window"),
    ("rtc", "coarse_offset", "min_quality", "rtc.min_quality"),
    *[("reflectors", f, "chip", "rtc.reflector_chip_px")
      for f in ("locate_peak", "measure_scene", "measure_scene_file", "target_window")],
    *[("reflectors", f, "search_px", "rtc.reflector_search_px")
      for f in ("locate_peak", "measure_scene", "measure_scene_file")],
    *[("reflectors", f, "edge_px", "rtc.reflector_edge_px")
      for f in ("locate_peak", "measure_scene", "measure_scene_file", "target_window")],
    *[("reflectors", f, "min_pcr_db", "rtc.reflector_min_pcr_db")
      for f in ("locate_peak", "measure_scene", "measure_scene_file")],
    *[("reflectors", f, "pixel_is_point", "rtc.reflector_pixel_is_point")
      for f in ("expected_positions", "measure_scene", "measure_scene_file")],
    *[("velocity", f, "uncertainty", "insar.velocity_uncertainty")
      for f in ("velocity", "velocity_weighted", "fit_design", "fit_model")],
    ("insar", "velocity_files", "uncertainty", "insar.velocity_uncertainty"),
]  # fmt: skip


def test_library_defaults_equal_the_schema():
    leaves = _leaves(schema_defaults())
    by_name: dict[str, list[object]] = {}
    for key, value in leaves.items():
        by_name.setdefault(key.rsplit(".", 1)[-1], []).append(value)
    checked = 0
    for name in MODULES:
        mod = importlib.import_module(f"sarstack.{name}")
        for fname, fn in inspect.getmembers(mod, inspect.isfunction):
            if fn.__module__ != mod.__name__:
                continue
            for p in inspect.signature(fn).parameters.values():
                if p.name not in by_name or p.default is inspect.Parameter.empty:
                    continue
                if p.default is None or (name, fname, p.name) in OTHER_MEANING:
                    continue
                d = list(p.default) if isinstance(p.default, tuple) else p.default
                assert d in by_name[p.name], (
                    f"sarstack.{name}.{fname}({p.name}={p.default!r}): the schema says "
                    f"{by_name[p.name]}"
                )
                checked += 1
    for mod, fname, param, key in EXPLICIT:
        fn = getattr(importlib.import_module(f"sarstack.{mod}"), fname)
        d = inspect.signature(fn).parameters[param].default
        assert d == leaves[key], f"sarstack.{mod}.{fname}({param}={d!r}): {key} is {leaves[key]!r}"
        checked += 1
    from sarstack import rtc

    assert rtc.DEFAULT_MIN_QUALITY == leaves["rtc.min_quality"]
    assert checked >= 10


def test_resolved_nulls():
    cfg = schema_defaults()
    assert cfg["insar"]["block_shape"] == [64, cfg["block_shape"][1]]
    assert cfg["rtc"]["min_quality"] == 2.0
