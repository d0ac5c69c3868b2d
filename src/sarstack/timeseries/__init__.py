"""InSAR time-series kernels: network inversion, referencing, displacement, velocity.

Conventions
-----------
* A pair network is a list of ``(i, j)`` date indices (reference ``i``,
  secondary ``j``) into a date-sorted stack; an interferogram of pair
  ``(i, j)`` measures ``phase[j] - phase[i]``.
* ``A = sarstack.network.incidence_matrix(pairs, n_dates)`` has shape
  ``(n_ifg, n_dates - 1)``; the unknowns are the phases of the later dates
  relative to the first date, whose phase is fixed at zero.
* Stacks are ``(n_ifg, rows, cols)`` or flattened ``(n_ifg, n_pixels)``;
  every kernel keeps the trailing shape. NaN is nodata: :func:`invert_l2` and
  :func:`invert_l1` give NaN in every output for a pixel with a NaN in any
  interferogram; :func:`invert_weighted` drops the missing interferogram for
  that pixel only (dates it cuts off from the first date are NaN).
* Displacement is ``-phase`` (positive = towards the radar, e.g. uplift),
  times ``wavelength / (4 pi)`` to get metres.

The per-pixel kernels run in JAX over all pixels at once (no per-pixel loop)
and return NumPy arrays: L2 is one product with the pseudo-inverse of the
shared ``A``; L1 is a batched primal-dual interior-point method that factors
each pixel's normal matrix as a band matrix and certifies each pixel's
duality gap; weighted / censored L2 (:func:`invert_weighted`,
per-pixel interferogram weights, 0 = not used) solves each pixel's normal
equations with a Cholesky unrolled over the network's sparsity pattern, and
reports dates cut off from the first date as NaN. They work in float32, or
in float64 when the input is float64 and the caller enabled it with
``sarstack.jaxcfg.configure_jax(x64=True)`` (L1 then iterates in float32
first and finishes in float64, see :func:`invert_l1`). Importing this module
configures nothing. There is no file I/O here.
"""

from __future__ import annotations

from typing import Any

from sarstack.network import (
    NetworkSolution,
    check_network,
    is_single_reference,
    single_reference_series,
)
from sarstack.refpoint import (
    check_reference_point,
    phase_to_displacement,
    reference,
    select_reference_point,
)
from sarstack.timeseries._coherence import temporal_coherence
from sarstack.timeseries._common import Inversion, LeastSquares, Method
from sarstack.timeseries._common import _prepare as _prepare
from sarstack.timeseries._invert import invert
from sarstack.timeseries._l2 import invert_l2, invert_l2_rows
from sarstack.velocity import velocity, velocity_weighted

#: Names served by the JAX modules, imported on first use (importing JAX costs
#: ~1.3 s and ~150 MB, which a stage that only needs L2 or the coherence
#: never pays): name -> submodule.
_JAX_NAMES = {
    "_band_cholesky": "_cholesky",
    "_band_solve": "_cholesky",
    "_design": "_l1",
    "_l1_certify": "_l1",
    "_l1_chunk": "_l1",
    "_l1_threads": "_l1",
    "invert_l1": "_l1",
    "correlation_weights": "_weighted",
    "invert_weighted": "_weighted",
    "weighted_chunk_pixels": "_weighted",
}
_JAX_MODULES = frozenset(_JAX_NAMES.values())


def __getattr__(name: str) -> Any:
    import importlib

    if name in _JAX_MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    module = _JAX_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


# The ``_name`` entries (above and in ``_JAX_NAMES``) are private helpers that tests call as
# ``timeseries._name`` (not in __all__). Module constants are not re-exported:
# patch them in the module that reads them, e.g. ``timeseries._l1._L1_BLOCK``
# or ``timeseries._weighted._SPARSE_MAX_OPS``.
__all__ = [
    "Inversion",
    "LeastSquares",
    "Method",
    "NetworkSolution",
    "check_network",
    "check_reference_point",
    "correlation_weights",
    "invert",
    "invert_l1",
    "invert_l2",
    "invert_l2_rows",
    "invert_weighted",
    "is_single_reference",
    "phase_to_displacement",
    "reference",
    "select_reference_point",
    "single_reference_series",
    "temporal_coherence",
    "velocity",
    "velocity_weighted",
    "weighted_chunk_pixels",
]
