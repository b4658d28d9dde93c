"""Date shifting: exact whole days, DT precision and UTC offset kept, bad values refused."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dicomhub.core.deid.dates import BadDate, shift_da, shift_dt, shift_values

dates = st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2090, 12, 31))
offsets = st.integers(-3650, 3650)


@given(dates, offsets)
def test_da_moves_by_exactly_the_offset(day: dt.date, days: int) -> None:
    out = shift_da(day.strftime("%Y%m%d"), days)
    assert dt.datetime.strptime(out, "%Y%m%d").date() - day == dt.timedelta(days=days)


@given(
    dates,
    offsets,
    st.sampled_from(["", "10", "1016", "101600", "101600.1", "101600.123456"]),
    st.sampled_from(["", "+0100", "-0500", "+0000", "+1400"]),
)
def test_dt_keeps_time_and_offset(day: dt.date, days: int, clock: str, tz: str) -> None:
    out = shift_dt(day.strftime("%Y%m%d") + clock + tz, days)
    moved = dt.datetime.strptime(out[:8], "%Y%m%d").date()
    assert moved - day == dt.timedelta(days=days)
    assert out[8:] == clock + tz


def test_multi_valued() -> None:
    assert shift_values("20200115\\20200229", 1, datetime=False) == "20200116\\20200301"


@pytest.mark.parametrize("value", ["2020", "202001", "20201301", "20200230", "2020-01-15", "x"])
def test_bad_da(value: str) -> None:
    with pytest.raises(BadDate):
        shift_da(value, 1)


@pytest.mark.parametrize(
    "value", ["2020", "202001", "20200115101", "20200115.5", "20200115101600+01", "20201332"]
)
def test_bad_or_coarse_dt(value: str) -> None:
    with pytest.raises(BadDate):
        shift_dt(value, 1)


def test_out_of_range() -> None:
    with pytest.raises(BadDate):
        shift_da("00010101", -1)
