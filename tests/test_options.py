"""Each stage option declared once (sarstack.options): the schema gives its
type, choices and help, STAGE_OPTIONS its flag, and the rules and the stages
both derive theirs from them."""

from __future__ import annotations

import argparse
import copy
import importlib
import re
from pathlib import Path

import pytest
from conftest import schema_defaults

from sarstack import cli, options

ROOT = Path(__file__).resolve().parents[1]
RULES = sorted((ROOT / "workflow" / "rules").glob("*.smk"))

# Stage options that no config key drives (the rules set them from the job).
NOT_CONFIG = {"--threads", "--strip", "--column", "--help", "--verbose"}


def _parse(stage: str, cfg: dict) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    options.add_config_options(p, stage)
    return p.parse_args(options.config_args(stage, cfg))


def _same(parsed, value) -> bool:
    if isinstance(value, (list, tuple)):
        return list(parsed or []) == list(value)  # an empty list is left out
    return parsed == value


def _variant(cfg: dict) -> dict:
    """A config with other values than the defaults: booleans flipped, a
    nullable number set, a list filled."""
    cfg = copy.deepcopy(cfg)
    cfg["insar"]["velocity_model"]["annual"] = True
    cfg["insar"]["velocity_model"]["steps"] = ["2020-03-01", "2020-09-01"]
    cfg["insar"]["closure_qc"]["exclude"] = False
    cfg["insar"]["closure_qc"]["max_loop_rms_rad"] = 1.5
    cfg["insar"]["write_residuals"] = True
    cfg["insar"]["wavelength"] = 0.0555
    cfg["insar"]["exclude_dates"] = ["2020-01-13"]
    cfg["insar"]["reference_point"] = [3, 4]
    cfg["rtc"]["misplaced"] = "drop"
    cfg["rtc"]["dates_method"] = "robust"
    cfg["rtc"]["requirement_m"] = 6.0
    cfg["rtc"]["reflector_pixel_is_point"] = True
    return cfg


@pytest.mark.parametrize("variant", [False, True])
def test_every_config_option_round_trips_through_its_flag(variant):
    cfg = schema_defaults()
    if variant:
        cfg = _variant(cfg)
    for stage, flags in options.STAGE_OPTIONS.items():
        ns = _parse(stage, cfg)
        for flag, key in flags.items():
            want = options.config_value(cfg, key)
            got = getattr(ns, flag[2:].replace("-", "_"))
            assert _same(got, want), f"{stage} {flag} ({key}): {got!r} != {want!r}"


def test_flags_follow_the_schema():
    for stage, flags in options.STAGE_OPTIONS.items():
        p = argparse.ArgumentParser()
        options.add_config_options(p, stage)
        by_flag = {a.option_strings[0]: a for a in p._actions if a.option_strings}
        for flag, key in flags.items():
            node = options.key_schema(key)
            action = by_flag[flag]
            assert action.default is None, f"{stage} {flag} has a default"
            assert action.help and key in action.help
            if "enum" in node:
                assert set(action.choices) == {v for v in node["enum"] if v is not None}
            nullable = "null" in options._types(node) and key not in options._resolved()
            any_length = action.nargs == "*"
            assert action.required is not (nullable or any_length), f"{stage} {flag} ({key})"


@pytest.mark.parametrize("stage", cli.STAGES)
def test_stage_options_have_no_defaults_of_their_own(stage):
    """The schema holds every default: a stage's config-driven options come
    from the registry without one, and its own options default to nothing."""
    parser = importlib.import_module(f"sarstack.cli.{stage}").create_parser()
    for action in parser._actions:
        flag = action.option_strings[-1] if action.option_strings else action.dest
        if flag in NOT_CONFIG or action.default in (None, False):
            continue
        pytest.fail(f"sarstack {stage} {flag} has a default of its own: {action.default!r}")


def test_an_unknown_key_in_the_registry_is_named():
    with pytest.raises(KeyError, match="insar.no_such_key"):
        options.key_schema("insar.no_such_key")


def test_each_registered_flag_is_in_its_stage_and_given_flags_are_kept():
    cfg = schema_defaults()
    for stage in cli.STAGES:
        parser = importlib.import_module(f"sarstack.cli.{stage}").create_parser()
        have = {s for a in parser._actions for s in a.option_strings}
        assert set(options.STAGE_OPTIONS.get(stage, {})) <= have, stage
    argv = options.config_args("insar_velocity", cfg, given=["--annual", "--step", "2020-01-01"])
    assert "--annual" not in argv and "--no-annual" not in argv and "--step" not in argv
    argv = options.config_args("insar_velocity", cfg, given=["--no-annual"])
    assert "--annual" not in argv and "--no-annual" not in argv


def test_a_mode_takes_another_stages_options_from_the_registry():
    """insar_invert --index gathers: its mask options are insar_gather's (the
    schema's type, help and no default), not declared by hand, and stay out of
    its own entry (its strip jobs do not rerun when the mask changes)."""
    invert = importlib.import_module("sarstack.cli.insar_invert").create_parser()
    gather = importlib.import_module("sarstack.cli.insar_gather").create_parser()
    for flag in ("--coherence-mask", "--min-region-px"):
        assert flag not in options.STAGE_OPTIONS["insar_invert"]
        mine, theirs = (next(a for a in p._actions if flag in a.option_strings)
                        for p in (invert, gather))  # fmt: skip
        assert (mine.type, mine.required, mine.default, mine.dest) == (
            theirs.type, theirs.required, None, theirs.dest)
        assert mine.help == f"with --index: {theirs.help}"
    # a mode's boolean is optional there, the schema's default when absent
    mine, theirs = (next(a for a in p._actions if "--compress-series" in a.option_strings)
                    for p in (invert, gather))  # fmt: skip
    assert theirs.required and not mine.required
    assert mine.default is options.key_schema("insar.compress_series")["default"] is False
    assert "--compress-series" not in options.STAGE_OPTIONS["insar_invert"]
    with pytest.raises(KeyError, match="--no-such-flag"):
        options.add_config_options(argparse.ArgumentParser(), "insar_gather",
                                   only=["--no-such-flag"])  # fmt: skip


def test_the_rules_pass_no_config_option_by_hand():
    """A config-driven flag is written in no rule: every rule takes its stage's
    options from stage_opts (one declaration per key). A flag of the same name
    that another stage takes for a file (``--pairs {output.pairs:q}``) is not
    a config option."""
    flags = {f for fl in options.STAGE_OPTIONS.values() for f in fl}
    text = "\n".join(
        line for p in RULES for line in p.read_text().splitlines() if not line.strip().startswith("#")
    )
    a_file = re.compile(r"""\s+\{(input|output)\.|['"],\s*(input|output)\.|\s+\{params\.\w+:q\}""")
    found = set()
    for f in flags:
        for m in re.finditer(rf"(?<![\w-]){re.escape(f)}(?![\w-])", text):
            if not a_file.match(text, m.end()):
                found.add(f)
    assert not found, f"config flags written in the rules: {sorted(found)}"
    assert text.count("stage_opts(") >= 20
