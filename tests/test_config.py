"""Config validation in process (the Snakefile runs the same function; the
one-line terminal errors are covered through Snakemake in test_bad_input)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sarstack.config import load_schema, validate_config
from sarstack.errors import SarstackError

SCHEMA = load_schema(Path(__file__).resolve().parents[1] / "workflow/schemas/config.schema.yaml")


def _validate(tmp_path, insar):
    return validate_config({"output_dir": str(tmp_path / "out"), "insar": insar}, SCHEMA)


def test_new_insar_keys_have_defaults(tmp_path):
    ins = _validate(tmp_path, {})["insar"]
    assert ins["exclude_dates"] == [] and ins["exclude_pairs"] == []
    assert ins["velocity_model"] == {"annual": False, "semiannual": False, "steps": []}
    assert ins["reference_window"] == 1 and ins["reference_lonlat"] is None
    assert ins["coherence_mask"] is None and ins["min_region_px"] is None
    assert ins["troposphere"] == {"delays": None, "kind": "zenith", "units": "m",
                                  "incidence": None, "incidence_deg": None}  # fmt: skip
    # Set up as a whole (kind zenith with a constant angle, metres with a wavelength): valid.
    _validate(tmp_path, {"wavelength": 0.0555, "troposphere": {"delays": "d/*.tif",
                                                               "incidence_deg": 39.5}})


def test_resolved_nulls(tmp_path):
    cfg = validate_config({"output_dir": str(tmp_path / "out")}, SCHEMA)
    assert cfg["insar"]["block_shape"] == [64, cfg["block_shape"][1]]
    assert cfg["rtc"]["min_quality"] == 2.0


@pytest.mark.parametrize(("insar", "key"), [
    ({"exclude_dates": ["2020-02-30"]}, "insar.exclude_dates"),
    ({"exclude_dates": ["20200201"]}, "insar.exclude_dates"),
    ({"exclude_pairs": ["20200101-20200113"]}, "insar.exclude_pairs"),
    ({"exclude_pairs": ["20200101_20201313"]}, "insar.exclude_pairs"),
    ({"max_temporal_baseline": 0}, "insar.max_temporal_baseline"),
    ({"min_mean_correlation": 1.5}, "insar.min_mean_correlation"),
    ({"start_date": "2020-13-01"}, "insar.start_date"),
    ({"velocity_model": {"annual": "maybe"}}, "insar.velocity_model"),
    ({"velocity_model": {"steps": ["2020-02-31"]}}, "insar.velocity_model.steps"),
    ({"velocity_model": {"trend": True}}, "insar.velocity_model"),
    ({"coherence_mask": 1.2}, "insar.coherence_mask"),
    ({"min_region_px": 10}, "insar.min_region_px"),
    ({"reference_window": 4}, "insar.reference_window"),
    ({"reference_window": 0}, "insar.reference_window"),
    ({"reference_point": [1, 2], "reference_lonlat": [-99.1, 19.4]}, "insar.reference_lonlat"),
    ({"reference_lonlat": [-99.1]}, "insar.reference_lonlat"),
    ({"troposphere": {"delays": "d/*.tif", "kind": "los"}}, "insar.troposphere.units"),
    ({"wavelength": 0.0555, "troposphere": {"delays": "d/*.tif"}}, "insar.troposphere.incidence"),
    ({"troposphere": {"delays": "d/*.tif", "units": "rad", "incidence": "i.tif",
                      "incidence_deg": 30}}, "insar.troposphere.incidence"),
    ({"troposphere": {"incidence_deg": 90}}, "insar.troposphere.incidence_deg"),
    ({"troposphere": {"kind": "slant"}}, "insar.troposphere.kind"),
    ({"troposphere": {"delay": "d/*.tif"}}, "insar.troposphere.delay"),
])  # fmt: skip
def test_bad_insar_key_is_named(tmp_path, insar, key):
    with pytest.raises(SarstackError, match=key.replace(".", r"\.")):
        _validate(tmp_path, insar)
