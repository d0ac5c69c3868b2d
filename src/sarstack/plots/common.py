"""What every figure shares: atomic PNG saving, the 'not measurable' figure,
colour bars."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import ScalarFormatter  # noqa: E402
from mpl_toolkits.axes_grid1 import make_axes_locatable  # noqa: E402

from sarstack.io import atomic_output  # noqa: E402

#: Text of the figure drawn when a stack has nothing measurable.
NOT_MEASURABLE = "not measurable"


#: What the per-pair offset is (see :func:`sarstack.rtc.robust_stats`).
PAIR_OFFSET = "pair offset (mean of ok tiles within 3 robust σ of their median)"


def _save(fig: plt.Figure, path: str | Path) -> plt.Figure:
    with atomic_output(path, suffix=".png") as tmp:
        # Fast zlib level: the figures are small either way and encoding is a share of the job.
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png",
                    pil_kwargs={"compress_level": 1})
    plt.close(fig)
    return fig


def _not_measurable(title: str, reason: str, path: str | Path) -> plt.Figure:
    """A figure that says, in words, that there is nothing to plot."""
    fig, ax = plt.subplots(figsize=(7, 2.6))
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.62, NOT_MEASURABLE, ha="center", va="center", fontsize=20,
            color="tab:red", transform=ax.transAxes)
    ax.text(0.5, 0.25, reason, ha="center", va="center", fontsize=10, wrap=True,
            transform=ax.transAxes)
    return _save(fig, path)


def _colorbar(fig: plt.Figure, ax: plt.Axes, mappable: Any, label: str) -> Any:
    """A colorbar exactly as tall as ``ax`` (a map must not be dwarfed by it)."""
    cax = make_axes_locatable(ax).append_axes("right", size="4%", pad=0.08)
    return fig.colorbar(mappable, cax=cax, label=label)


def _ok(pairs: pd.DataFrame) -> pd.Series:
    return (pairs["status"] == "ok") & np.isfinite(pairs["east_m"]) & np.isfinite(pairs["north_m"])


def default_min_ok_pairs(n_pairs: int) -> int:
    """Tiles ok in fewer pairs than this are masked in the tile maps: half the pairs."""
    return max(1, math.ceil(n_pairs / 2))


def _no_offset(ax: plt.Axes) -> None:
    """Plain tick labels (no "+4.5e5" offset) on both axes of a linear plot."""
    for axis in (ax.xaxis, ax.yaxis):
        fmt = axis.get_major_formatter()
        if isinstance(fmt, ScalarFormatter):
            fmt.set_useOffset(False)
