"""The method dispatcher of the network inversion (``insar.method``).

JAX is imported only for L1: an L2 stage runs on NumPy alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sarstack.errors import SarstackError
from sarstack.timeseries._common import Inversion, Method
from sarstack.timeseries._l2 import invert_l2


def invert(
    a: np.ndarray, phase: np.ndarray, method: Method | str, **kw: Any
) -> Inversion:
    """Network inversion by ``method`` (:class:`Method`, or ``"L1"`` / ``"L2"``).

    Returns
    -------
    Inversion
        ``x, residual, n_iter`` as :func:`invert_l1`; ``n_iter`` is 0 for the
        direct L2 solve (whose one option is :func:`invert_l2`'s ``all_finite``).
    """
    try:
        meth = Method(str(getattr(method, "value", method)).upper())
    except ValueError:
        raise SarstackError(f"method {method!r} is not 'L1' or 'L2'") from None
    if meth is Method.L2:
        if set(kw) - {"all_finite"}:
            raise SarstackError(f"L2 inversion takes no options but all_finite, got {sorted(kw)}")
        x, res = invert_l2(a, phase, **kw)
        return Inversion(x, res, 0)
    from sarstack.timeseries._l1 import invert_l1  # JAX

    return invert_l1(a, phase, **kw)
