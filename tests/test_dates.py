import datetime as dt

import numpy as np
import pytest
from conftest import with_schema_defaults

from sarstack import dates
from sarstack import network as snet
from sarstack.errors import SarstackError

parse_scene_date = with_schema_defaults(dates.parse_scene_date)
parse_pair_dates = with_schema_defaults(dates.parse_pair_dates)

D = dt.date


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("S1A_IW_20200101T010203_DVP_RTC30_G_gpuned_ABCD_VV.tif", D(2020, 1, 1)),
        (
            "OPERA_L2_RTC-S1_T137-292318-IW1_20211119T015854Z_20250830T120333Z_S1A_30_v1.0_VV.tif",
            D(2021, 11, 19),
        ),
        ("/some/20200101/scene_20221231.tif", D(2022, 12, 31)),  # base name only
        ("x_123420200105_20200107.tif", D(2020, 1, 7)),  # no match inside longer digit runs
    ],
)
def test_scene_date(name, expected):
    assert parse_scene_date(name) == expected


def test_scene_date_missing_names_file():
    with pytest.raises(SarstackError, match="nodate.tif"):
        parse_scene_date("nodate.tif")


@pytest.mark.parametrize(
    "name",
    [
        "a_20201340_20200202.tif",  # never skipped for the next date of the name
        "OPERA_L2_RTC-S1_T137-292318-IW1_20211341T015854Z_20250830T120333Z_S1A_30_v1.0_VV.tif",
        "S1A_IW_20200101T010203_20200231T010203_VV.tif",  # a later group is checked too
    ],
)
def test_invalid_calendar_date_is_an_error_naming_the_file(name):
    bad = next(t for t in ("20201340", "20211341", "20200231") if t in name)
    with pytest.raises(SarstackError, match=f"{name}: '{bad}' is not a valid date"):
        parse_scene_date(name)


def test_invalid_date_in_a_pair_name_is_an_error():
    with pytest.raises(SarstackError, match="x_20200101_20201301.unw.tif: '20201301'"):
        parse_pair_dates("x_20200101_20201301.unw.tif")
    with pytest.raises(SarstackError, match="'181301' is not a valid date"):
        parse_pair_dates("ifg_180106-181301.tif", "%y%m%d")


@pytest.mark.parametrize(
    ("name", "fmt", "expected"),
    [
        ("20200101_20200113.unw.tif", "%Y%m%d", (D(2020, 1, 1), D(2020, 1, 13))),
        ("cropA_20180106-20180130_VV_8rlks_eqa_unw.tif", "%Y%m%d", (D(2018, 1, 6), D(2018, 1, 30))),
        ("ifg_180106-180130.tif", "%y%m%d", (D(2018, 1, 6), D(2018, 1, 30))),
    ],
)
def test_pair_dates(name, fmt, expected):
    assert parse_pair_dates(name, fmt) == expected


def test_pair_dates_needs_two():
    with pytest.raises(SarstackError, match="needs two dates"):
        parse_pair_dates("x_20200101.tif")
    with pytest.raises(SarstackError, match="found 3 .*ambiguous"):
        parse_pair_dates("20200101_20200113_20200125.unw.tif")


def test_check_unique_names_both_files():
    with pytest.raises(SarstackError, match="b.tif.*a.tif"):
        dates.check_unique([D(2020, 1, 1), D(2020, 1, 1)], ["a.tif", "b.tif"])


def test_networks():
    assert snet.make_pairs(4, "sequential") == [(0, 1), (1, 2), (2, 3)]
    assert snet.make_pairs(4, "reference") == [(0, 1), (0, 2), (0, 3)]
    assert snet.make_pairs(4, "nearest:2") == [(0, 1), (0, 2), (1, 2), (1, 3), (2, 3)]
    with pytest.raises(SarstackError, match="is not 'sequential', 'reference', 'nearest:K' or 'sequential\\+long:K'"):
        snet.make_pairs(4, "nearest:0")
    with pytest.raises(SarstackError, match="at least 2"):
        snet.make_pairs(1, "sequential")


def test_incidence_matrix_models_differences():
    pairs = [(0, 1), (1, 2), (0, 2)]
    a = snet.incidence_matrix(pairs, 3)
    x = np.array([0.0, 2.0, 5.0])  # first date is the datum
    np.testing.assert_allclose(a @ x[1:], [2.0, 3.0, 5.0])


def test_network_components():
    labels = snet.network_components([(0, 1), (2, 3)], 4)
    assert labels[0] == labels[1] != labels[2] == labels[3]


def test_years_since():
    y = dates.years_since([D(2020, 1, 1), D(2021, 1, 1)])
    np.testing.assert_allclose(y, [0.0, 366 / 365.25])
