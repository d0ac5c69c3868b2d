"""Config validation against the JSON schema, with defaults filled in.

Errors are one line naming the key, e.g. ``config rtc.tiles: [0, 8] ...``.
"""

from __future__ import annotations

import copy
import datetime
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from sarstack.errors import SarstackError


def _types(schema: Mapping[str, Any]) -> set[str]:
    t = schema.get("type", [])
    out = {t} if isinstance(t, str) else set(t)
    for alt in schema.get("anyOf", []):
        out |= _types(alt)
    return out


def _coerce(value: Any, schema: Mapping[str, Any]) -> Any:
    """A string where the schema wants a number, boolean, list or null is parsed as YAML.

    Snakemake's ``--config 'rtc={"upsample_factor": 20}'`` hands nested values
    over as strings; ``"20"`` becomes 20 here. A string that is valid as a
    string (or parses to the wrong type) is left for the validator to judge.
    """
    types = _types(schema)
    if isinstance(value, datetime.date) and "string" in types:
        return value.isoformat()  # an unquoted YAML date: 2020-03-01
    if isinstance(value, str) and "string" not in types and types:
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        kinds = {
            "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
            "boolean": lambda v: isinstance(v, bool),
            "array": lambda v: isinstance(v, list),
            "object": lambda v: isinstance(v, dict),
            "null": lambda v: v is None,
        }
        if any(kinds[t](parsed) for t in types if t in kinds):
            value = parsed
    if isinstance(value, list) and "items" in schema:
        value = [_coerce(v, schema["items"]) for v in value]
    return value


def _fill_defaults(instance: dict, schema: Mapping[str, Any]) -> None:
    for key, sub in schema.get("properties", {}).items():
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if key in instance:
            instance[key] = _coerce(instance[key], sub)
        if isinstance(instance.get(key), dict) and sub.get("type") == "object":
            _fill_defaults(instance[key], sub)


def _check_semantics(cfg: Mapping[str, Any]) -> None:
    """Checks a JSON schema cannot express; each names its key."""
    out = str(cfg.get("output_dir", ""))
    if not out.strip():
        raise SarstackError("config output_dir: must not be empty")
    resolved = Path(out).expanduser().resolve()
    if resolved == Path(resolved.anchor):
        raise SarstackError(f"config output_dir: {out!r} is the filesystem root")
    if resolved == Path.home().resolve():
        raise SarstackError(f"config output_dir: {out!r} is the home folder; use a folder of its own")
    for parent in (resolved, *resolved.parents):
        if parent.exists() and not parent.is_dir():
            raise SarstackError(f"config output_dir: {parent} exists and is not a folder")
    rtc = cfg.get("rtc", {})
    lo, hi = rtc.get("percentiles", [0, 100])
    if not lo < hi:
        raise SarstackError(f"config rtc.percentiles: {[lo, hi]} must be [low, high] with low < high")
    import datetime as dt

    ins = cfg.get("insar", {})
    model = ins.get("velocity_model") or {}
    dated = [("extra_reference_date", ins.get("extra_reference_date")),
             ("start_date", ins.get("start_date")), ("end_date", ins.get("end_date"))]
    dated += [("exclude_dates", d) for d in ins.get("exclude_dates") or []]
    dated += [("velocity_model.steps", d) for d in model.get("steps") or []]
    for key, date in dated:
        if date:
            try:
                dt.date.fromisoformat(date)
            except ValueError:
                raise SarstackError(f"config insar.{key}: {date!r} is not a calendar date") from None
    for pair in ins.get("exclude_pairs") or []:
        try:
            for part in str(pair).split("_"):
                dt.datetime.strptime(part, "%Y%m%d")
        except ValueError:
            raise SarstackError(f"config insar.exclude_pairs: {pair!r} is not a pair of calendar dates") from None
    if ins.get("reference_point") is not None and ins.get("reference_lonlat") is not None:
        raise SarstackError("config insar.reference_point and insar.reference_lonlat are both set; give one")
    k = ins.get("reference_window", 1)
    if isinstance(k, int) and k % 2 == 0:
        raise SarstackError(f"config insar.reference_window: {k} must be odd (the window is centred on the point)")
    if ins.get("min_region_px") is not None and ins.get("coherence_mask") is None:
        raise SarstackError("config insar.min_region_px: needs insar.coherence_mask (it cleans that mask)")


def load_schema(path: str | Path) -> dict:
    with open(path) as f:
        return yaml.safe_load(f)


def validate_config(config: Mapping[str, Any], schema: Mapping[str, Any]) -> dict:
    """Return a validated copy of ``config`` with schema defaults filled in.

    Raises
    ------
    SarstackError
        ``config <dotted.key>: <value> <reason>`` for the first problem found.
    """
    cfg = copy.deepcopy(dict(config))
    _fill_defaults(cfg, schema)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        path = list(err.absolute_path)
        # Report the key, not an array index inside it.
        while path and isinstance(path[-1], int):
            path.pop()
        key = ".".join(str(p) for p in path) or "<top level>"
        if err.validator == "additionalProperties":
            extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
            where = f"{key}." if path else ""
            raise SarstackError(f"config {where}{extra[0]}: unknown key")
        msg = err.message.replace("\n", " ")
        raise SarstackError(f"config {key}: {msg}")
    _check_semantics(cfg)
    _resolve(cfg)
    return cfg


#: Default inversion block rows (insar.block_shape: null): with 64 rows a
#: 512-row stack already makes 8 strips of whole blocks for the scatter, and a
#: job's memory stays near 1 GB for ~100 ifgs (L1 on 2048-col stacks: 64 x 512
#: px blocks 1.16 GB, 128 x 512 1.68 GB).
INSAR_BLOCK_ROWS = 64


def _resolve(cfg: dict) -> None:
    """Resolve the "null = derived from other keys" defaults, once, after validation.

    ``insar.block_shape: null`` becomes ``[min(64, block rows), block cols]``.
    (``scatter: auto`` follows ``--cores`` and ``rtc.max_shift_px: null`` the
    tile size: they are resolved where those are known.)
    """
    ins = cfg.get("insar")
    if isinstance(ins, dict) and ins.get("block_shape") is None and "block_shape" in cfg:
        rows, cols = cfg["block_shape"]
        ins["block_shape"] = [min(INSAR_BLOCK_ROWS, rows), cols]


def load_config_file(path: str | Path) -> dict:
    """Read a YAML config file; a syntax error names the file, line and column.

    Raises
    ------
    SarstackError
        ``<path>:<line>:<column>: <problem>`` (one line), or the file is
        unreadable or not a mapping.
    """
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise SarstackError(f"{path}: cannot read ({e.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SarstackError(f"{where}: not valid YAML ({problem})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SarstackError(f"{path}: not a mapping of config keys")
    return data


def merge_config(base: dict, over: Mapping[str, Any]) -> dict:
    """Merge ``over`` into ``base`` key by key, nested mappings recursively (as Snakemake does)."""
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(base.get(k), dict):
            merge_config(base[k], v)
        else:
            base[k] = copy.deepcopy(v)
    return base


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sarstack.config FILE...``: check config files as the workflow would."""
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="python -m sarstack.config", description=main.__doc__)
    p.add_argument("files", nargs="+", help="YAML config files (later ones override earlier)")
    a = p.parse_args(argv)
    schema = load_schema(Path(__file__).resolve().parents[2] / "workflow/schemas/config.schema.yaml")
    merged: dict = {}
    try:
        for f in a.files:
            merge_config(merged, load_config_file(f))
        validate_config(merged, schema)
    except SarstackError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"ok: {', '.join(a.files)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
