"""Config validation against the JSON schema, with defaults filled in.

Errors are one line naming the key, e.g. ``config rtc.tiles: [0, 8] ...``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from sarstack.errors import SarstackError


def _fill_defaults(instance: dict, schema: Mapping[str, Any]) -> None:
    for key, sub in schema.get("properties", {}).items():
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if isinstance(instance.get(key), dict) and sub.get("type") == "object":
            _fill_defaults(instance[key], sub)


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
    return cfg
