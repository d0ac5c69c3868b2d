"""Each stage's config-driven options, declared once.

The schema (``workflow/schemas/config.schema.yaml``) holds every config key's
type, default and description. :data:`STAGE_OPTIONS` says which keys each stage
takes and under which flag; from these two:

- the stage's command line gets its options (:func:`add_config_options`:
  type, choices, number of values and help from the schema; required unless
  the key may be null; booleans as ``--flag`` / ``--no-flag``);
- the workflow's rules get their arguments (:func:`config_args` of the
  validated config, through ``common.smk``'s ``stage_opts``), and so do tests
  and benchmarks that run a stage by hand.

Neither the stages nor the library repeat a default. Adding a config key to a
stage is one line here (and the key in the schema).
"""

from __future__ import annotations

import argparse
import functools
import shlex
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

#: The inversion's own options, in the order insar_invert has always passed them.
_INVERSION_OPTIONS = {"--block": "insar.block_shape", "--method": "insar.method",
                      "--wavelength": "insar.wavelength", "--mask": "insar.mask",
                      "--l1-tolerance": "insar.l1_tolerance",
                      "--l1-max-iterations": "insar.l1_max_iterations",
                      "--weighting": "insar.weighting",
                      "--correlation-looks": "insar.correlation_looks",
                      "--correlation-threshold": "insar.correlation_threshold"}
#: The options of the inversion chain run again in one job (sarstack.insar.chain:
#: insar_injection, insar_reference_sensitivity): the inversion's, the gather's
#: and the velocity fit's, as insar_invert, insar_gather and insar_velocity take them.
_CHAIN_OPTIONS = {**_INVERSION_OPTIONS,
                  "--reference-window": "insar.reference_window",
                  "--coherence-mask": "insar.coherence_mask",
                  "--min-region-px": "insar.min_region_px",
                  "--velocity-weighting": "insar.velocity_weighting",
                  "--uncertainty": "insar.velocity_uncertainty",
                  "--annual": "insar.velocity_model.annual",
                  "--semiannual": "insar.velocity_model.semiannual",
                  "--step": "insar.velocity_model.steps",
                  "--jax-cache": "jax_cache_dir"}  # fmt: skip

#: stage -> {flag: dotted config key}. Options a stage takes from the job
#: (files, threads, chunk labels) are declared in the stage itself.
STAGE_OPTIONS: dict[str, dict[str, str]] = {
    "demo_rtc_stack": {"--n-dates": "demo.rtc_dates", "--shape": "demo.rtc_shape",
                       "--seed": "demo.seed", "--looks": "demo.rtc_looks",
                       "--point-targets": "demo.rtc_point_targets"},
    "demo_insar_stack": {"--n-dates": "demo.insar_dates", "--shape": "demo.insar_shape",
                         "--seed": "demo.seed"},
    "rtc_select": {"--tiles": "rtc.tiles", "--misplaced": "rtc.misplaced"},
    "rtc_superset": {"--resampling": "rtc.resampling", "--scale": "rtc.scale",
                     "--nodata": "rtc.nodata", "--block": "block_shape"},
    "rtc_flatten": {"--tiles": "rtc.tiles", "--percentiles": "rtc.percentiles",
                    "--block": "block_shape", "--scale": "rtc.scale"},
    "rtc_tiles": {"--tiles": "rtc.tiles"},
    "rtc_xcorr": {"--tiles": "rtc.tiles", "--pairs": "rtc.pairs",
                  "--upsample-factor": "rtc.upsample_factor",
                  "--max-nan-fraction": "rtc.max_nan_fraction",
                  "--preprocess": "rtc.preprocess",
                  "--refine-iterations": "rtc.refine_iterations", "--block": "block_shape",
                  "--min-quality": "rtc.min_quality", "--max-shift-px": "rtc.max_shift_px"},
    "rtc_aggregate": {"--requirement-m": "rtc.requirement_m",
                      "--min-fraction-within": "rtc.min_fraction_within",
                      "--min-ok-tiles": "rtc.min_ok_tiles",
                      "--outlier-sigma": "rtc.outlier_sigma",
                      "--outlier-floor-px": "rtc.outlier_floor_px"},
    "rtc_dates": {"--dates-method": "rtc.dates_method", "--requirement-m": "rtc.requirement_m",
                  "--min-fraction-within": "rtc.min_fraction_within",
                  "--event-significance": "rtc.event_significance"},
    "rtc_plots": {"--requirement-m": "rtc.requirement_m"},
    "rtc_injection": {"--min-ok-tiles": "rtc.min_ok_tiles",
                      "--outlier-sigma": "rtc.outlier_sigma",
                      "--outlier-floor-px": "rtc.outlier_floor_px",
                      "--max-shift-px": "rtc.injection.max_shift_px",
                      "--seed": "rtc.injection.seed", "--dates-method": "rtc.dates_method",
                      "--requirement-m": "rtc.requirement_m"},
    "rtc_terrain": {"--tiles": "rtc.tiles", "--dem": "rtc.dem", "--incidence": "rtc.incidence"},
    "rtc_reflectors": {"--chip-px": "rtc.reflector_chip_px",
                       "--search-px": "rtc.reflector_search_px",
                       "--min-pcr-db": "rtc.reflector_min_pcr_db",
                       "--edge-px": "rtc.reflector_edge_px",
                       "--pixel-is-point": "rtc.reflector_pixel_is_point",
                       "--scale": "rtc.scale", "--requirement-m": "rtc.requirement_m",
                       "--min-fraction-within": "rtc.min_fraction_within"},
    "rtc_stacks_summary": {"--requirement-m": "rtc.requirement_m",
                           "--min-fraction-within": "rtc.min_fraction_within"},
    "insar_select": {"--date-format": "insar.date_format", "--block": "block_shape",
                     "--exclude-dates": "insar.exclude_dates",
                     "--exclude-pairs": "insar.exclude_pairs",
                     "--max-temporal-baseline": "insar.max_temporal_baseline",
                     "--min-mean-correlation": "insar.min_mean_correlation",
                     "--start-date": "insar.start_date", "--end-date": "insar.end_date",
                     "--max-loop-rms-rad": "insar.closure_qc.max_loop_rms_rad",
                     "--loop-exclude": "insar.closure_qc.exclude"},
    "insar_correlation_mean": {"--block": "block_shape", "--mask": "insar.mask"},
    "insar_conncomp_count": {"--block": "block_shape", "--mask": "insar.mask"},
    "insar_troposphere": {"--delays": "insar.troposphere.delays",
                          "--kind": "insar.troposphere.kind",
                          "--delay-units": "insar.troposphere.units",
                          "--incidence": "insar.troposphere.incidence",
                          "--incidence-deg": "insar.troposphere.incidence_deg",
                          "--wavelength": "insar.wavelength",
                          "--date-format": "insar.date_format", "--block": "insar.block_shape"},
    "insar_unwrap_correction": {"--method": "insar.unwrap_correction",
                                "--block": "insar.block_shape",
                                "--reference-window": "insar.reference_window"},
    "insar_deramp": {"--block": "insar.block_shape", "--model": "insar.deramp",
                     "--min-correlation": "insar.deramp_min_correlation",
                     "--mask": "insar.mask"},
    "insar_reference": {"--threshold": "insar.reference_threshold",
                        "--window": "insar.reference_window", "--block": "insar.block_shape",
                        "--point": "insar.reference_point", "--lonlat": "insar.reference_lonlat",
                        "--mask": "insar.mask"},
    # the flags in the order they always had: a reorder would rerun users' inversions
    "insar_invert": {**_INVERSION_OPTIONS,
                     "--write-residuals": "insar.write_residuals",
                     "--reference-window": "insar.reference_window",
                     "--jax-cache": "jax_cache_dir"},
    "insar_gather": {"--block": "insar.block_shape", "--method": "insar.method",
                     "--weighting": "insar.weighting", "--wavelength": "insar.wavelength",
                     "--coherence-mask": "insar.coherence_mask",
                     "--min-region-px": "insar.min_region_px",
                     "--compress-series": "insar.compress_series"},
    "insar_velocity": {"--block": "insar.block_shape",
                       "--velocity-weighting": "insar.velocity_weighting",
                       "--uncertainty": "insar.velocity_uncertainty",
                       "--annual": "insar.velocity_model.annual",
                       "--semiannual": "insar.velocity_model.semiannual",
                       "--step": "insar.velocity_model.steps"},
    "insar_injection": {**_CHAIN_OPTIONS,
                        "--deramp": "insar.deramp",
                        "--deramp-min-correlation": "insar.deramp_min_correlation",
                        "--velocity": "insar.injection.velocity",
                        "--sigma": "insar.injection.sigma",
                        "--centre": "insar.injection.centre", "--seed": "insar.injection.seed",
                        "--inject-step": "insar.injection.step",
                        "--inject-step-date": "insar.injection.step_date"},
    "insar_reference_sensitivity": {**_CHAIN_OPTIONS,
                                    "--points": "insar.reference_sensitivity.points",
                                    "--threshold": "insar.reference_threshold"},
    "quality_dates": {"--residual-mads": "quality.residual_mads",
                      "--closure-fraction": "quality.closure_fraction"},
    "insar_rereference": {"--block": "block_shape", "--date": "insar.extra_reference_date"},
}  # fmt: skip


@functools.lru_cache(maxsize=1)
def schema() -> dict:
    """The config schema (parsed once per process)."""
    from sarstack.config import SCHEMA_PATH, load_schema

    return load_schema(SCHEMA_PATH)


def key_schema(key: str) -> Mapping[str, Any]:
    """The schema node of dotted ``key`` (e.g. ``"insar.block_shape"``)."""
    node: Mapping[str, Any] = schema()
    for part in key.split("."):
        props = node.get("properties", {})
        if part not in props:
            raise KeyError(f"config key {key} is not in the schema")
        node = props[part]
    return node


def config_value(cfg: Mapping[str, Any], key: str) -> Any:
    """The value of dotted ``key`` in a config."""
    value: Any = cfg
    for part in key.split("."):
        value = value[part]
    return value


def _resolved() -> frozenset[str]:
    from sarstack.config import RESOLVED_KEYS

    return RESOLVED_KEYS


def _types(node: Mapping[str, Any]) -> set[str]:
    from sarstack.config import _types as types

    return types(node)


def _converter(node: Mapping[str, Any]) -> Any:
    """argparse ``type`` for one value of a key of schema ``node``."""
    types = _types(node) - {"null"}
    if types == {"integer"}:
        return int
    if types <= {"integer", "number"} and types:
        return float
    if types == {"string"} or not types:
        return str
    from sarstack.config import _coerce

    def parse(text: str) -> Any:  # e.g. scatter: an integer or "auto"
        return _coerce(text, node)

    return parse


def _help(key: str, node: Mapping[str, Any]) -> str:
    text = " ".join(str(node.get("description", "")).split())
    first = text.split(". ")[0].rstrip(".")
    return f"{first} (config {key})" if first else f"config {key}"


def add_config_options(
    parser: argparse.ArgumentParser, stage: str, only: Sequence[str] | None = None,
    when: str = "",
) -> None:  # fmt: skip
    """Add ``stage``'s config-driven options (:data:`STAGE_OPTIONS`) to
    ``parser``, each as the schema describes its key. No option has a default
    of its own: a key that may be null is optional (absent = null), a boolean
    is ``--flag`` / ``--no-flag`` and required like every other option, except
    a list of any length (absent = empty).

    ``only``: just these of ``stage``'s flags, for a stage that takes them in
    one of its modes (``insar_invert --index`` gathers as ``insar_gather``
    does), named in its help by ``when`` (e.g. ``"with --index"``). They stay
    out of the stage's own entry, so its rule neither passes them nor reruns
    when they change; a mode's boolean, absent, is the schema's default (the
    mode is optional, so its flags cannot be required)."""
    flags = STAGE_OPTIONS.get(stage, {})
    if only is not None:
        unknown = [f for f in only if f not in flags]
        if unknown:
            raise KeyError(f"{stage} has no config option {', '.join(unknown)}")
        flags = {f: flags[f] for f in only}
    for flag, key in flags.items():
        node = key_schema(key)
        types = _types(node)
        nullable = "null" in types and key not in _resolved()
        hint = _help(key, node)
        kw: dict[str, Any] = {"help": f"{when}: {hint}" if when else hint,
                              "dest": flag[2:].replace("-", "_")}  # fmt: skip
        if types - {"null"} == {"boolean"}:
            kw.update(action=argparse.BooleanOptionalAction, required=not (nullable or when),
                      default=node.get("default") if when else None)  # fmt: skip
        elif "array" in types:
            items = node.get("items", {})
            lo, hi = node.get("minItems"), node.get("maxItems")
            fixed = lo is not None and lo == hi
            # a list of any length (dates to leave out, steps) may be empty: absent
            kw.update(type=_converter(items), required=fixed and not nullable, default=None,
                      nargs=hi if fixed else "*")  # fmt: skip
            if not fixed:
                kw["action"] = "extend"  # repeatable: --step A --step B
            if "enum" in items:
                kw["choices"] = items["enum"]
        else:
            kw.update(type=_converter(node), required=not nullable, default=None)
            if "enum" in node:
                kw["choices"] = [v for v in node["enum"] if v is not None]
        parser.add_argument(flag, **kw)


def _given(flag: str, given: Iterable[str]) -> bool:
    negative = "--no-" + flag[2:]
    return any(g == flag or g == negative for g in given)


def config_args(stage: str, cfg: Mapping[str, Any], given: Sequence[str] = ()) -> list[str]:
    """``stage``'s config-driven options from a validated config (``argv``
    items), except those already in ``given``; a null value or an empty list
    is left out."""
    argv: list[str] = []
    for flag, key in STAGE_OPTIONS.get(stage, {}).items():
        if _given(flag, given):
            continue
        value = config_value(cfg, key)
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + flag[2:])
        elif value is None or (isinstance(value, (list, tuple)) and not value):
            continue
        elif isinstance(value, (list, tuple)):
            argv += [flag, *(str(v) for v in value)]
        else:
            argv += [flag, str(value)]
    return argv


def stage_opts(stage: str, cfg: Mapping[str, Any]) -> str:
    """:func:`config_args` as one shell-quoted string, for a rule's command."""
    return " ".join(shlex.quote(a) for a in config_args(stage, cfg))
