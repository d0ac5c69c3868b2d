"""Shared fixtures: paths to the real data beside the project, skipped with a
reason when absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SARSTACK_SHARED_DATA", ROOT.parent / "shared" / "data"))

# Keep JAX's compilation cache inside the test session's temp area by default.
os.environ.setdefault("SARSTACK_JAX_CACHE", str(Path.home() / ".cache" / "sarstack" / "jax-tests"))


def shared_dataset(name: str) -> Path:
    p = SHARED / name
    if not p.is_dir():
        pytest.skip(f"real data {name} not found at {p} (set SARSTACK_SHARED_DATA)")
    return p


@pytest.fixture
def land_burst() -> Path:
    return shared_dataset("opera_rtc_T137-292319-IW2")


@pytest.fixture
def sea_burst() -> Path:
    return shared_dataset("opera_rtc_T137-292318-IW1")


@pytest.fixture
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
