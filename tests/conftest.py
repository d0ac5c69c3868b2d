"""Shared fixtures: paths to the real data beside the project, skipped with a
reason when absent."""

from __future__ import annotations

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
    from sarstack.config import load_schema, validate_config

    schema = load_schema(ROOT / "workflow" / "schemas" / "config.schema.yaml")
    return validate_config({"output_dir": "results"}, schema)


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
