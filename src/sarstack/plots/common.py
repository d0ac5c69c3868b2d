"""What every figure shares: atomic PNG saving, the 'not measurable' figure,
colour bars."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import ScalarFormatter  # noqa: E402
from mpl_toolkits.axes_grid1 import make_axes_locatable  # noqa: E402

from sarstack.io import atomic_output  # noqa: E402

if TYPE_CHECKING:  # the RTC figures' tables; the InSAR figures need no pandas
    import pandas as pd

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


def draw_figures(tasks: Sequence[Callable[[], object]], workers: int = 1) -> None:
    """Call each of ``tasks`` (each draws and saves its own figures), in up to
    ``workers`` processes side by side.

    With ``workers > 1`` (and ``os.fork``), the process forks ``workers - 1``
    children: worker ``k`` draws ``tasks[k::workers]``, this process the
    first share. A fork shares the imported modules and the data already in
    memory, so a child starts in milliseconds; each figure is saved
    atomically, and the PNGs are those drawn one after the other (tested).
    A child that fails makes this call raise, with its error.
    """
    workers = max(1, min(int(workers), len(tasks)))
    if workers == 1 or not hasattr(os, "fork"):
        for task in tasks:
            task()
        return
    # A child's RSS counts every page it shares with this process: hand the
    # memory that earlier stages of the chain freed back to the system first.
    from sarstack.cli import release_freed_memory

    release_freed_memory()
    children = []
    for k in range(1, workers):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: its share, then out without the parent's exit handlers
            os.close(read_end)
            code = 0
            try:
                for task in tasks[k::workers]:
                    task()
            except BaseException as e:  # noqa: BLE001 - reported to the parent
                os.write(write_end, f"{type(e).__name__}: {e}".encode()[:4000])
                code = 1
            finally:
                os.close(write_end)
                os._exit(code)
        os.close(write_end)
        children.append((pid, read_end))
    try:
        for task in tasks[0::workers]:
            task()
    finally:
        errors = []
        for pid, read_end in children:
            with os.fdopen(read_end, "rb") as f:
                message = f.read().decode(errors="replace")
            _, status = os.waitpid(pid, 0)
            if status != 0:
                errors.append(message or f"a plotting process ended with status {status}")
    if errors:
        raise RuntimeError("; ".join(errors))


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
