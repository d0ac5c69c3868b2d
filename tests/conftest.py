"""Shared fixtures: paths to the real data beside the project, skipped with a
reason when absent."""

from __future__ import annotations

import copy
import functools
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SARSTACK_SHARED_DATA", ROOT.parent / "shared" / "data"))

#: ``python -m snakemake`` as the tests run it. ``--nolock``: the tests run in
#: parallel (pytest-xdist) in this checkout's one ``.snakemake/``, and any
#: Snakemake run, a dry-run too, removes that whole lock folder when it ends, so
#: a parallel run failed to write its lock (FileNotFoundError). The tests'
#: outputs never overlap, so the locks protect nothing here; the kill test,
#: which exercises them, runs in a working directory of its own.
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--nolock"]

# Keep JAX's compilation cache inside the test session's temp area by default.
os.environ.setdefault("SARSTACK_JAX_CACHE", str(Path.home() / ".cache" / "sarstack" / "jax-tests"))


def schema_defaults() -> dict:
    """The config with every default filled in and resolved (as the workflow sees it)."""
    return copy.deepcopy(_schema_defaults())


@functools.lru_cache(maxsize=1)
def _schema_defaults() -> dict:
    from sarstack.config import load_schema, validate_config

    schema = load_schema(ROOT / "workflow" / "schemas" / "config.schema.yaml")
    return validate_config({"output_dir": "results"}, schema)


# Library parameters that stand for a config key: those named after the key's
# last part (``block_shape``, ``date_format``, ``requirement_m``), and these,
# named otherwise. An ambiguous name (``block_shape``: the top level's or
# insar's) stands for the first of its keys in the schema. The library gives
# none of them a default (tests/test_library_defaults.py): the schema's is the
# only one.
CONFIG_ALIASES = {
    ("refpoint.select_reference_point", "threshold"): "insar.reference_threshold",
    ("refpoint.alternative_points", "threshold"): "insar.reference_threshold",
    ("insar.reference.reference_phase", "window"): "insar.reference_window",
    ("deramp.fit_ramps", "min_correlation"): "insar.deramp_min_correlation",
    ("timeseries._l1.invert_l1", "tol"): "insar.l1_tolerance",
    ("timeseries._l1.invert_l1", "max_iter"): "insar.l1_max_iterations",
    ("timeseries._weighted.correlation_weights", "looks"): "insar.correlation_looks",
    ("timeseries._weighted.correlation_weights", "threshold"): "insar.correlation_threshold",
    **{(f"reflectors.measure.{f}", "chip"): "rtc.reflector_chip_px"
       for f in ("locate_peak", "measure_scene", "measure_scene_file", "target_window")},
    **{(f"reflectors.measure.{f}", p): f"rtc.reflector_{p}"
       for f in ("locate_peak", "measure_scene", "measure_scene_file")
       for p in ("search_px", "min_pcr_db")},
    **{(f"reflectors.measure.{f}", "edge_px"): "rtc.reflector_edge_px"
       for f in ("locate_peak", "measure_scene", "measure_scene_file", "target_window")},
    **{(f, "pixel_is_point"): "rtc.reflector_pixel_is_point"
       for f in ("reflectors.inputs.expected_positions", "reflectors.measure.measure_scene",
                 "reflectors.measure.measure_scene_file")},
    **{(f, "uncertainty"): "insar.velocity_uncertainty"
       for f in ("velocity.linear.velocity", "velocity.linear.velocity_weighted",
                 "velocity.model.fit_design", "velocity.model.fit_model",
                 "insar.model.velocity_files")},
    **{(f, "iterations"): "rtc.refine_iterations"
       for f in ("rtc.correlate.measure_pairs", "xcorr.register.register_products",
                 "xcorr.register.register_tiles")},
    **{(f, "min_fraction"): "rtc.min_fraction_within"
       for f in ("rtc.aggregate.summarize", "rtc.aggregate.judge_dates",
                 "rtc.aggregate.verdict", "rtc.stacks.summarize_stacks",
                 "reflectors.summary.summarize_offsets")},
}  # fmt: skip

# Same name as a config key, another quantity (a default is fine): why.
OTHER_MEANING = {
    ("xcorr.tiles.prepare_tiles", "scale"): "the scale tiles are correlated in, not the files'",
    ("xcorr.register.register_tiles", "scale"): "as prepare_tiles",
    ("xcorr.register.tile_products", "scale"): "as prepare_tiles",
    ("io.write_raster", "nodata"): "the nodata tag an output gets, not the scenes' rtc.nodata",
    ("io.write_raster", "units"): "the output's units tag, not the delays' units",
    ("insar.diagnostics.temporal_average", "units"): "as io.write_raster",
    ("plots.maps.raster_map", "points"): "points to mark, not how many to try",
    ("plots.maps.velocity_map", "points"): "as raster_map",
    **{(f"refpoint.{f}", p): "the raster read (None: not given), not its file name"
       for f in ("select_reference_point", "alternative_points")
       for p in ("quality", "conncomp")},
    ("rtc.aggregate.aggregate_tiles", "pairs"): "the pair table, not the network's spec",
    ("rtc.per_date.invert_dates", "sigma"): "each offset's standard error, not the injection's",
    ("synthetic.events.simulate_event_pairs", "step"): "the simulated event's step",
    # The synthetic stacks' knobs: what the generator simulates (tests call it
    # with its own defaults); the demo stages pass their config's.
    **{(f"synthetic.{m}.{f}", p): "a synthetic stack's own knob"
       for m, fs, ps in (
           ("insar", ("make_ifg_stack", "simulate_ifg_stack"),
            ("seed", "start_date", "steps", "wavelength")),
           ("rtc", ("make_rtc_stack", "simulate_rtc_stack"),
            ("seed", "start_date", "max_shift_px", "nodata")))
       for f in fs for p in ps},
}  # fmt: skip


@functools.lru_cache(maxsize=1)
def _keys_by_name() -> dict[str, str]:
    """Config key of each last part (the first in the schema when ambiguous)."""
    out: dict[str, str] = {}

    def walk(cfg: dict, prefix: str) -> None:
        for k, v in cfg.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                out.setdefault(k, f"{prefix}{k}")

    walk(_schema_defaults(), "")
    return out


def function_name(fn) -> str:
    """``module.function`` under ``sarstack`` (e.g. ``refpoint.select_reference_point``)."""
    return f"{fn.__module__.removeprefix('sarstack.')}.{fn.__name__}"


def config_params(fn) -> dict[str, str]:
    """The parameters of library function ``fn`` that stand for a config key:
    parameter -> dotted key."""
    name, by_name = function_name(fn), _keys_by_name()
    out = {}
    for p in inspect.signature(fn).parameters:
        if (name, p) in OTHER_MEANING:
            continue
        key = CONFIG_ALIASES.get((name, p), by_name.get(p))
        if key is not None:
            out[p] = key
    return out


def with_schema_defaults(fn, **keys: str):
    """``fn`` with its config parameters (:func:`config_params`) at the
    schema's defaults where a call leaves them out (by name or position).
    ``keys``: parameter -> another key (``block_shape="insar.block_shape"``)."""
    from sarstack.options import config_value

    cfg = _schema_defaults()
    defaults = {p: config_value(cfg, k) for p, k in {**config_params(fn), **keys}.items()}
    sig = inspect.signature(fn)

    @functools.wraps(fn)
    def call(*args, **kwargs):
        given = sig.bind_partial(*args, **kwargs).arguments
        kwargs.update({p: copy.deepcopy(v) for p, v in defaults.items() if p not in given})
        return fn(*args, **kwargs)

    return call


def run_script(name: str, *args: object) -> subprocess.CompletedProcess:
    """Run ``workflow/scripts/<name>`` with this Python; output captured. The
    stage's config-driven options a test leaves out get the schema's defaults."""
    script = ROOT / "workflow" / "scripts" / name
    from sarstack.options import config_args

    argv = [str(a) for a in args]
    if "--help" not in argv:
        argv += config_args(Path(name).stem, schema_defaults(), given=argv)
    return subprocess.run([sys.executable, str(script), *argv], capture_output=True, text=True)


def pipeline(tmp: Path, unw_glob: str, *extra_invert: str, point=None, cor_glob=None):
    """select -> reference -> invert -> velocity through the scripts."""
    out = tmp / "out"
    sel = ["--unwrapped", unw_glob, "--out", out / "ifgs.csv"]
    if cor_glob:
        sel += ["--correlation", cor_glob]
    p = run_script("insar_select.py", *sel)
    assert p.returncode == 0, p.stderr
    ref = ["--ifgs", out / "ifgs.csv", "--out", out / "ref.txt"]
    if point:
        ref += ["--point", *point]
    p = run_script("insar_reference.py", *ref)
    assert p.returncode == 0, p.stderr
    p = run_script("insar_invert.py", "--ifgs", out / "ifgs.csv", "--reference", out / "ref.txt",
                   "--out-dir", out, "--index", out / "ts.csv", *extra_invert)
    assert p.returncode == 0, p.stderr
    p = run_script("insar_velocity.py", "--index", out / "ts.csv", "--ifgs", out / "ifgs.csv",
                   "--out", out / "velocity.tif", "--out-std", out / "velocity_std.tif")
    assert p.returncode == 0, p.stderr
    return out


def invert_options(method: str) -> dict:
    """``timeseries.invert``'s options for ``method``: the L1 solver's
    tolerance and iteration cap at the schema's defaults, none for L2."""
    ins = _schema_defaults()["insar"]
    if str(method).upper() != "L1":
        return {}
    return {"tol": ins["l1_tolerance"], "max_iter": ins["l1_max_iterations"]}


def shared_dataset(name: str) -> Path:
    p = SHARED / name
    if not p.is_dir():
        pytest.skip(f"real data {name} not found at {p} (set SARSTACK_SHARED_DATA)")
    return p


@pytest.fixture(scope="session")  # module fixtures may use it
def land_burst() -> Path:
    return shared_dataset("opera_rtc_T137-292319-IW2")


@pytest.fixture(scope="session")  # module fixtures may use it
def sea_burst() -> Path:
    return shared_dataset("opera_rtc_T137-292318-IW1")


@pytest.fixture(scope="session")  # module fixtures may use it
def pyrate_crop() -> Path:
    return shared_dataset("pyrate_cropA")


@pytest.fixture(scope="module")
def x64():
    """float64 JAX for one test module; the previous setting is restored afterwards.

    Use with ``pytestmark = pytest.mark.usefixtures("x64")``.
    """
    import jax

    from sarstack.jaxcfg import configure_jax

    prev = bool(jax.config.jax_enable_x64)
    configure_jax(x64=True)
    yield
    jax.config.update("jax_enable_x64", prev)


def small_workflow_config(path: Path, out: Path, scatter: int) -> Path:
    """Write the small two-branch demo config (both branches, L1, residuals on, the
    reference window, quality mask and a seasonal + step model)."""
    import yaml

    path.write_text(yaml.safe_dump({
        "output_dir": str(out), "scatter": scatter, "demo": {
            "enabled": True, "rtc_dates": 5, "rtc_shape": [192, 192], "rtc_point_targets": 5,
            "insar_dates": 8, "insar_shape": [64, 64]},
        "rtc": {"tiles": [3, 3], "pairs": "nearest:2"},
        "insar": {"block_shape": [16, 64], "method": "L1", "write_residuals": True,
                  "reference_window": 3, "coherence_mask": 0.3, "min_region_px": 4,
                  "velocity_model": {"annual": True, "steps": ["2020-02-06"]}},
    }))
    return path


@pytest.fixture(scope="session")
def small_workflow_run(tmp_path_factory):
    """``run(scatter)``: the small demo workflow run to completion, once per
    ``scatter`` per test session (shared by the scatter and kill tests)."""
    import subprocess

    done: dict[int, Path] = {}

    def run(scatter: int) -> Path:
        if scatter not in done:
            top = tmp_path_factory.mktemp(f"small-n{scatter}")
            cfg = small_workflow_config(top / "config.yaml", top / "out", scatter)
            p = subprocess.run(
                [*SNAKEMAKE, "--cores", "2", "--configfile", str(cfg)],
                cwd=ROOT, capture_output=True, text=True,
                env=dict(os.environ, PYTHONWARNINGS="ignore"),
            )
            assert p.returncode == 0, p.stderr[-3000:]
            done[scatter] = top / "out"
        return done[scatter]

    return run


REAL_DATA_FIXTURES = {"land_burst", "sea_burst", "pyrate_crop"}


def pytest_collection_modifyitems(config, items):
    """Tests on the shared real data carry the ``realdata`` marker (select or
    deselect them with ``-m realdata`` / ``-m "not realdata"``). Under
    pytest-xdist (``-n auto --dist loadgroup``) the tests that share the small
    workflow run go to one worker, so that it runs once."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if REAL_DATA_FIXTURES & names:
            item.add_marker(pytest.mark.realdata)
        if "small_workflow_run" in names:
            item.add_marker(pytest.mark.xdist_group("small_workflow"))
