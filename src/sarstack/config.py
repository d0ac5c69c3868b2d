"""Config validation against the JSON schema, with defaults filled in.

Errors are one line naming the key, e.g. ``config rtc.tiles: [0, 8] ...``.
"""

from __future__ import annotations

import copy
import datetime
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

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


#: Names under {output_dir}/rtc/ that a stack of rtc.stacks may not take.
RTC_RESERVED_NAMES = frozenset(
    {"superset", "flat", "xcorr", "plots", "stacks_summary", "stacks_overall"}
)


def _check_semantics(cfg: Mapping[str, Any]) -> None:
    """Checks a JSON schema cannot express; each names its key."""
    _check_folders(cfg)
    _check_rtc(cfg.get("rtc", {}))
    _check_insar(cfg.get("insar", {}))


def _check_folders(cfg: Mapping[str, Any]) -> None:
    """``output_dir`` and ``jax_cache_dir``: folders of their own that can be made."""
    out = str(cfg.get("output_dir", ""))
    if not out.strip():
        raise SarstackError("config output_dir: must not be empty")
    resolved = Path(out).expanduser().resolve()
    if resolved == Path(resolved.anchor):
        raise SarstackError(f"config output_dir: {out!r} is the filesystem root")
    if resolved == Path.home().resolve():
        raise SarstackError(f"config output_dir: {out!r} is the home folder; use a folder of its own")
    if "{" in out or "}" in out:
        raise SarstackError(
            f"config output_dir: {out!r} contains '{{' or '}}', which Snakemake reads as a "
            "wildcard; choose a folder name without braces"
        )
    for parent in (resolved, *resolved.parents):
        if parent.exists() and not parent.is_dir():
            raise SarstackError(f"config output_dir: {parent} exists and is not a folder")
    cache = cfg.get("jax_cache_dir")
    if cache:
        cache_path = Path(str(cache)).expanduser().resolve()
        for parent in (cache_path, *cache_path.parents):
            if parent.exists() and not parent.is_dir():
                raise SarstackError(
                    f"config jax_cache_dir: {parent} exists and is not a folder"
                )


def _check_rtc(rtc: Mapping[str, Any]) -> None:
    """The ``rtc`` keys."""
    tiles = rtc.get("tiles")
    if isinstance(tiles, list) and len(tiles) == 2:
        n_tiles = int(tiles[0]) * int(tiles[1])
        if n_tiles < 2:
            raise SarstackError(
                f"config rtc.tiles: {tiles} is a single tile; a pair's offset is the robust "
                "mean over several tiles: give at least 2 (e.g. [2, 2])"
            )
        min_ok = rtc.get("min_ok_tiles")
        if isinstance(min_ok, int) and min_ok > n_tiles:
            raise SarstackError(
                f"config rtc.min_ok_tiles: {min_ok} is more than the {n_tiles} tiles of "
                f"rtc.tiles {tiles}, so no pair could be ok"
            )
    lo, hi = rtc.get("percentiles", [0, 100])
    if not lo < hi:
        raise SarstackError(f"config rtc.percentiles: {[lo, hi]} must be [low, high] with low < high")
    stacks = rtc.get("stacks") or {}
    if stacks and rtc.get("inputs"):
        raise SarstackError("config rtc.stacks: set either rtc.inputs (one stack) or rtc.stacks, not both")
    for name in stacks:
        if name in RTC_RESERVED_NAMES:
            raise SarstackError(
                f"config rtc.stacks.{name}: reserved (a folder or file of the RTC branch); "
                "choose another name"
            )


def _check_insar(ins: Mapping[str, Any]) -> None:
    """The ``insar`` keys."""
    import datetime as dt

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
    tropo = ins.get("troposphere") or {}
    if tropo.get("delays"):
        from sarstack import troposphere

        troposphere.check_options(kind=tropo.get("kind", "zenith"), units=tropo.get("units", "m"),
                                  incidence=tropo.get("incidence"),
                                  incidence_deg=tropo.get("incidence_deg"),
                                  wavelength=ins.get("wavelength"), prefix="config ")  # fmt: skip


#: The config schema: every key's type, default and description, once.
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def load_schema(path: str | Path = SCHEMA_PATH) -> dict:
    with open(path) as f:
        return yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


README_COMMAND = "python -m sarstack.config --markdown > config/README.md"

_README_INTRO = """\
A config is a YAML file of the keys below; every key is optional and one left
out takes the default shown. Run the workflow on yours with

```bash
snakemake --cores N --configfile my.yaml
```

`config/config.yaml` is the shipped config (the synthetic demo); it is read only
when no `--configfile` is given, so your config never inherits from it.
`config/examples/` holds configs for real data. Check a config without running
anything with `python -m sarstack.config my.yaml` (it names the bad key, or the
line and column of a YAML syntax error).

The tables are generated from `workflow/schemas/config.schema.yaml`, which the
workflow validates every config against before any job runs."""


def _yaml_value(value: Any) -> str:
    """One-line YAML for a default or enum value (``null``, ``[]``, ``'%Y%m%d'``)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, allow_unicode=True)
    return text.removesuffix("\n...\n").strip()


def _md_cell(text: str) -> str:
    """Table-cell text: one line; pipes escaped, and ``*``/``<`` outside `code` spans."""
    parts = " ".join(str(text).split()).split("`")
    for i in range(0, len(parts), 2):  # even parts are outside code spans
        parts[i] = parts[i].replace("*", r"\*").replace("<", "&lt;")
    return "`".join(parts).replace("|", r"\|")


def _range(s: Mapping[str, Any]) -> str:
    lo, lo_open = (s["exclusiveMinimum"], True) if "exclusiveMinimum" in s else (s.get("minimum"), False)
    hi, hi_open = (s["exclusiveMaximum"], True) if "exclusiveMaximum" in s else (s.get("maximum"), False)
    if lo is not None and hi is not None:
        return f" in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    if lo is not None:
        return f" {'>' if lo_open else '≥'} {lo}"
    if hi is not None:
        return f" {'<' if hi_open else '≤'} {hi}"
    return ""


def _allowed_type(t: str, s: Mapping[str, Any]) -> str:
    if t in ("integer", "number"):
        return t + _range(s)
    if t == "string":
        if "pattern" in s:
            return f"string matching `{s['pattern']}`"
        return "non-empty string" if s.get("minLength", 0) >= 1 else "string"
    if t == "array":
        item = _allowed(s.get("items", {})) or "value"
        items = re.sub(r"^(integer|number|string|boolean|value)\b", r"\1s", item)
        lo, hi = s.get("minItems"), s.get("maxItems")
        if lo is not None and lo == hi:
            return f"list of {lo} {items}"
        if lo is not None and hi is not None:
            return f"list of {lo} to {hi} {items}"
        if lo is not None:
            return f"list of at least {lo} {items}"
        if hi is not None:
            return f"list of at most {hi} {items}"
        return f"list of {items}"
    if t == "object":
        return "mapping"
    return t


def _allowed(s: Mapping[str, Any]) -> str:
    """Short form of what a schema node accepts: type, enum, range, pattern."""
    if "anyOf" in s or "oneOf" in s:
        return " or ".join(_allowed(alt) for alt in s.get("anyOf", s.get("oneOf")))
    if "const" in s:
        return f"`{_yaml_value(s['const'])}`"
    if "enum" in s:
        vals = ", ".join(f"`{_yaml_value(v)}`" for v in s["enum"])
        return f"one of {vals}"
    t = s.get("type", [])
    types = [t] if isinstance(t, str) else list(t)
    core = " or ".join(_allowed_type(x, s) for x in types if x != "null")
    if "null" in types:
        return f"{core}, or null" if core else "null"
    return core


def _sections(schema: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Mapping[str, Any]]]:
    """(dotted name, object schema) for the top level and every nested object, depth first."""
    out: list[tuple[str, Mapping[str, Any]]] = [(prefix, schema)]
    for key, sub in schema.get("properties", {}).items():
        if "properties" in sub:
            out += _sections(sub, f"{prefix}{key}.")
    return out


def schema_markdown(schema: Mapping[str, Any]) -> str:
    """``config/README.md``: a short intro, then one table of keys per config section.

    Columns: key (full dotted name), default (as YAML), allowed (type, enum,
    range or pattern in short form) and description (folded to one line).
    The output depends only on ``schema`` (key order as written there).
    """
    lines = [
        f"<!-- generated by: {README_COMMAND}; do not edit -->",
        "",
        "# Configuration",
        "",
        _README_INTRO,
    ]
    for name, section in _sections(schema):
        title = f"`{name[:-1]}`" if name else "Top level"
        lines += ["", f"## {title}", ""]
        desc = " ".join(str(section.get("description", "")).split())
        if desc:
            lines += [desc, ""]
        lines += ["| key | default | allowed | description |", "|---|---|---|---|"]
        for key, sub in section.get("properties", {}).items():
            default = _md_cell(f"`{_yaml_value(sub['default'])}`") if "default" in sub else ""
            if "properties" in sub:
                text = f"Section: see `{name}{key}` below."
            else:
                text = _md_cell(sub.get("description", ""))
            lines.append(f"| `{name}{key}` | {default} | {_md_cell(_allowed(sub))} | {text} |")
    return "\n".join(lines) + "\n"


def validate_config(config: Mapping[str, Any], schema: Mapping[str, Any]) -> dict:
    """Return a validated copy of ``config`` with schema defaults filled in.

    Raises
    ------
    SarstackError
        ``config <dotted.key>: <value> <reason>`` for the first problem found.
    """
    cfg = copy.deepcopy(dict(config))
    _fill_defaults(cfg, schema)
    import jsonschema  # here: ~55 ms, which the stages' option parsers need not pay

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


#: Keys that may be null in a config but never are once validated (the
#: validation resolves them); the stages taking them require them.
RESOLVED_KEYS = frozenset({"insar.block_shape"})  # (rtc.requirement_m stays nullable)

#: Default inversion block rows (insar.block_shape: null): with 64 rows a
#: 512-row stack already makes 8 strips of whole blocks for the scatter, and a
#: job's memory stays near 1 GB for ~100 ifgs (L1 on 2048-col stacks: 64 x 512
#: px blocks 1.16 GB, 128 x 512 1.68 GB).
INSAR_BLOCK_ROWS = 64


#: rtc.requirement presets: the keys each sets. OPERA's RTC-S1 cal/val
#: requirement: geolocation within 6 m (20 % of the 30 m posting), met by at
#: least 80 % of the validation products.
REQUIREMENT_PRESETS: dict[str, dict[str, float]] = {
    "opera": {"requirement_m": 6.0, "min_fraction_within": 0.8},
}


def _resolve(cfg: dict) -> None:
    """Resolve the "null = derived from other keys" defaults, once, after validation.

    ``insar.block_shape: null`` becomes ``[min(64, block rows), block cols]``;
    ``rtc.requirement: opera`` sets ``rtc.requirement_m`` (which must be null
    or the preset's) and ``rtc.min_fraction_within`` where it is null.
    (``scatter: auto`` follows the stack's size and ``rtc.max_shift_px: null``
    the tile size: they are resolved where those are known.)
    """
    ins = cfg.get("insar")
    if isinstance(ins, dict) and ins.get("block_shape") is None and "block_shape" in cfg:
        rows, cols = cfg["block_shape"]
        ins["block_shape"] = [min(INSAR_BLOCK_ROWS, rows), cols]
    rtc = cfg.get("rtc")
    if isinstance(rtc, dict) and rtc.get("requirement") in REQUIREMENT_PRESETS:
        name = rtc["requirement"]
        preset = REQUIREMENT_PRESETS[name]
        given = rtc.get("requirement_m")
        if given is not None and float(given) != preset["requirement_m"]:
            raise SarstackError(
                f"config rtc.requirement_m: {given} contradicts rtc.requirement: {name}"
                f" ({preset['requirement_m']:g} m); leave one of them out"
            )
        rtc["requirement_m"] = preset["requirement_m"]
        if rtc.get("min_fraction_within") is None:
            rtc["min_fraction_within"] = preset["min_fraction_within"]


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader whose impossible unquoted dates (``2020-02-30``) stay strings.

    PyYAML turns ``2020-02-30`` into ``datetime.date`` and raises a bare
    ``ValueError`` (no line, no key); kept as a string, the date is judged by
    the validation, which names its key.
    """

    def construct_yaml_timestamp(self, node: yaml.Node) -> Any:
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError:
            return self.construct_scalar(node)


_ConfigLoader.add_constructor("tag:yaml.org,2002:timestamp", _ConfigLoader.construct_yaml_timestamp)


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
        data = yaml.load(text, Loader=_ConfigLoader)  # noqa: S506 - a SafeLoader subclass
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
    """``python -m sarstack.config FILE...``: check config files as the workflow would.

    ``python -m sarstack.config --markdown``: print the config reference (config/README.md).
    """
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="python -m sarstack.config", description=main.__doc__)
    p.add_argument("files", nargs="*", help="YAML config files (later ones override earlier)")
    p.add_argument("--markdown", action="store_true",
                   help=f"print the config reference (config/README.md) instead: {README_COMMAND}")
    a = p.parse_args(argv)
    if a.markdown == bool(a.files):
        p.error("give config files to check, or --markdown alone")
    schema = load_schema(SCHEMA_PATH)
    if a.markdown:
        sys.stdout.flush()
        sys.stdout.buffer.write(schema_markdown(schema).encode())
        sys.stdout.flush()
        return 0
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
