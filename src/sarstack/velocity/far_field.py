"""The far-field check: whether the velocity is quiet away from the
reference and well constrained."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The scene is cut into this many strips along each axis for the far field.
FAR_FIELD_CELLS = 4


#: Quiet cells: an interquartile range of velocity at most this times the smallest.
FAR_FIELD_QUIET = 1.5


#: Warn when the far-field median exceeds this fraction of the velocity spread ...
FAR_FIELD_FRACTION = 0.05


#: ... and this many robust standard deviations of the far-field cell.
FAR_FIELD_SIGMAS = 3.0


#: Well-constrained: a finite standard error no more than this times the median one.
WELL_CONSTRAINED_STD = 3.0


def well_constrained(vel: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Pixels with a finite velocity and a finite standard error at most
    :data:`WELL_CONSTRAINED_STD` times the median standard error. A pixel
    fitted on too few dates to have a standard error (two dates) is not."""
    vel, std = np.asarray(vel, np.float64), np.asarray(std, np.float64)
    ok = np.isfinite(vel) & np.isfinite(std)
    if not ok.any():
        return ok
    return ok & (std <= WELL_CONSTRAINED_STD * float(np.median(std[ok])))


@dataclass(frozen=True)
class FarField:
    """How far from zero the quiet part of a velocity map reads.

    ``median``: median velocity of the well-constrained pixels of the far-field
    cell (``rows``, ``cols``: its half-open bounds). The scene is cut into
    :data:`FAR_FIELD_CELLS` x :data:`FAR_FIELD_CELLS` cells; of those at least
    half well constrained, the quiet ones have an interquartile range of
    velocity at most :data:`FAR_FIELD_QUIET` times the smallest, and the far
    field is the quiet cell whose median is nearest zero (so the check flags
    a map only when no quiet part of it reads as stable ground; a flat bowl
    floor or an ill-constrained model does not pass for the far field while
    a quiet cell reads zero). ``scatter``: that cell's robust standard deviation
    (IQR / 1.349); ``spread``: 98th minus 2nd percentile of the velocity over
    every well-constrained pixel; ``n_pixels``: pixels in the median.
    """

    median: float
    scatter: float
    spread: float
    n_pixels: int
    rows: tuple[int, int]
    cols: tuple[int, int]

    @property
    def limit(self) -> float:
        """Largest |median| that is not suspicious."""
        return max(FAR_FIELD_FRACTION * self.spread, FAR_FIELD_SIGMAS * self.scatter)

    @property
    def suspicious(self) -> bool:
        """The quiet ground moves by more than :attr:`limit`: a reference on moving ground."""
        return abs(self.median) > self.limit


def far_field(vel: np.ndarray, std: np.ndarray) -> FarField | None:
    """The far field of a velocity map (:class:`FarField`), or None when no
    cell is at least half well constrained.

    Stable ground far from the deformation is a quiet part of a scene: its
    velocities vary little. Referenced on stable ground it reads about zero;
    referenced on moving ground (the rim of a subsidence bowl) every quiet
    part reads minus the reference's motion, which
    :attr:`FarField.suspicious` flags.
    """
    vel = np.asarray(vel, np.float64)
    good = well_constrained(vel, std)
    if not good.any():
        return None
    cells: list[tuple[float, FarField]] = []
    rows = np.array_split(np.arange(vel.shape[0]), FAR_FIELD_CELLS)
    cols = np.array_split(np.arange(vel.shape[1]), FAR_FIELD_CELLS)
    for rr in rows:
        for cc in cols:
            if not (rr.size and cc.size):
                continue
            sl = (slice(rr[0], rr[-1] + 1), slice(cc[0], cc[-1] + 1))
            g = good[sl]
            if g.sum() < max(3, 0.5 * g.size):
                continue
            v = vel[sl][g]
            q25, q50, q75 = np.percentile(v, [25, 50, 75])
            cell = FarField(
                median=float(q50), scatter=float((q75 - q25) / 1.349), spread=0.0,
                n_pixels=int(v.size), rows=(int(rr[0]), int(rr[-1]) + 1),
                cols=(int(cc[0]), int(cc[-1]) + 1),
            )  # fmt: skip
            cells.append((float(q75 - q25), cell))
    if not cells:
        return None
    quiet = min(iqr for iqr, _ in cells) * FAR_FIELD_QUIET
    # Nearest zero among the quiet cells (ties: the first in row-major order).
    f = min((c for iqr, c in cells if iqr <= quiet), key=lambda c: abs(c.median))
    p2, p98 = np.percentile(vel[good], [2, 98])
    return FarField(f.median, f.scatter, float(p98 - p2), f.n_pixels, f.rows, f.cols)
