"""Absolute geolocation against point targets: measure each surveyed corner
reflector in every selected scene (reading only a window around it) and write
reflectors.csv (scene x target), absolute.csv (per scene and the stack, with a
verdict against the requirement) and a scatter plot of the offsets.

Conventions (see :mod:`sarstack.reflectors`): offsets are measured minus
expected, ``east_m`` along +x and ``north_m`` along +y of the scene's map CRS
(metres), positions pixel-is-area unless ``--pixel-is-point``.

Outputs
-------
``--out-reflectors`` (reflectors.csv)
    One row per scene x target, the columns of
    :func:`sarstack.reflectors.measure_scene`: ``date`` (YYYY-MM-DD), ``id``,
    ``expected_x``, ``expected_y``, ``expected_row``, ``expected_col``,
    ``row_px``, ``col_px``, ``east_m``, ``north_m``, ``pcr_db``, ``status``
    (``ok``, ``outside``, ``near_edge``, ``low_contrast``; offsets are empty
    unless ``ok``).
``--out-absolute`` (absolute.csv)
    Tidy, :func:`sarstack.reflectors.summarize_offsets`: one ``scope=scene``
    row per date and one ``scope=stack`` row (``date`` empty); columns
    ``scope, date, n_targets, n_ok, east_mean_m, north_mean_m, east_std_m,
    north_std_m, east_rms_m, north_rms_m, rms_m, offset_m, requirement_m,
    passes, verdict, unmeasured_dates``. A scene's statistics are over its ok
    targets and ``offset_m`` (the length of its mean offset) is what the
    requirement judges; the stack row's statistics are over the measured
    scenes' mean offsets, each scene once. ``verdict`` uses the vocabulary of
    summary.csv: ``pass``, ``fail``, ``incomplete`` (a scene had no ok
    target), ``not_measurable`` (no scene had one), ``no_requirement``;
    never ``pass`` on what could not be measured.
``--plot`` (PNG)
    East vs north offsets: every ok target, each scene's mean, the stack mean
    and the requirement circle.
"""

import argparse
import contextlib
import logging
from pathlib import Path

from sarstack import cli, io, options, reflectors, stagefiles
from sarstack.errors import SarstackError

log = logging.getLogger("rtc_reflectors")


def create_parser() -> argparse.ArgumentParser:
    """The stage's command-line parser."""
    p = cli.parser(__doc__)
    options.add_config_options(p, "rtc_reflectors")
    p.add_argument("--scenes", required=True, help="scenes.csv from rtc_select (date, key, path)")
    p.add_argument(
        "--reflectors",
        required=True,
        help="point-target CSV: id and lon, lat or x, y, crs (sarstack.reflectors)",
    )
    p.add_argument("--out-reflectors", required=True, help="reflectors.csv (scene x target)")
    p.add_argument("--out-absolute", required=True, help="absolute.csv (per scene and stack)")
    p.add_argument("--plot", required=True, help="PNG of the east/north offsets")
    return p  # fmt: skip


def read_scene_list(path: str) -> list[tuple[str, str]]:
    """``(date, path)`` of each scene in rtc_select's scenes.csv.

    Raises
    ------
    SarstackError
        Missing file, no ``date`` / ``path`` column, or no scenes.
    """
    try:
        rows = stagefiles.read_scenes(path)
    except (OSError, UnicodeDecodeError) as e:
        raise SarstackError(f"{path}: cannot read ({e})") from None
    if not rows:
        raise SarstackError(f"{path}: no scenes")
    missing = [c for c in ("date", "path") if c not in rows[0]]
    if missing:
        raise SarstackError(f"{path}: missing column(s) {', '.join(missing)} "
                            "(expected scenes.csv from rtc_select: date, key, path)")  # fmt: skip
    return [(r["date"], r["path"]) for r in rows]


def main(argv=None):
    a = create_parser().parse_args(argv)
    cli.setup_logging(a.verbose)
    import pandas as pd

    targets = reflectors.read_reflectors(a.reflectors)
    scenes = read_scene_list(a.scenes)
    log.info("%d point targets from %s, %d scenes", len(targets), a.reflectors, len(scenes))
    frames = []
    for k, (date, path) in enumerate(scenes, start=1):
        m = reflectors.measure_scene_file(
            path, targets, date, scale=a.scale, pixel_is_point=a.pixel_is_point,
            chip=a.chip_px, search_px=a.search_px, edge_px=a.edge_px, min_pcr_db=a.min_pcr_db,
        )  # fmt: skip
        ok = m[m["status"] == reflectors.ReflectorStatus.OK.value]
        counts = m["status"].value_counts()
        others = ", ".join(f"{n} {s}" for s, n in counts.items() if s != "ok")
        means = (f"; mean east {ok['east_m'].mean():.2f} m, north {ok['north_m'].mean():.2f} m"
                 if len(ok) else "")  # fmt: skip
        log.info("scene %d/%d %s: %d/%d targets ok%s%s", k, len(scenes), date, len(ok), len(m),
                 f" ({others})" if others else "", means)  # fmt: skip
        frames.append(m)
    measurements = pd.concat(frames, ignore_index=True)
    absolute = reflectors.summarize_offsets(measurements, a.requirement_m, a.min_fraction_within)
    stack = absolute.iloc[-1]
    log.info("stack: %d/%d target measurements ok in %d of %d scenes; mean east %.2f m, north "
             "%.2f m, RMS %.2f m; verdict: %s", stack.n_ok, stack.n_targets,
             len(scenes) - len(str(stack.unmeasured_dates or "").split()), len(scenes),
             stack.east_mean_m, stack.north_mean_m, stack.rms_m, stack.verdict)  # fmt: skip

    from sarstack import plots  # matplotlib: imported when it draws

    # All three outputs or none: the plot (itself written atomically) first, then
    # the two tables staged together and renamed only when both are written; a
    # failure there removes the plot again.
    plots.absolute_offsets(measurements, absolute, a.plot, a.requirement_m)
    try:
        with contextlib.ExitStack() as staged:
            tmp_refl = staged.enter_context(io.atomic_output(a.out_reflectors))
            tmp_abs = staged.enter_context(io.atomic_output(a.out_absolute))
            measurements.to_csv(tmp_refl, index=False)
            absolute.to_csv(tmp_abs, index=False)
    except BaseException:
        Path(a.plot).unlink(missing_ok=True)
        raise


if __name__ == "__main__":
    cli.run(main)
