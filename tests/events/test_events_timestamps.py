"""`events.timestamps`: day/month/year dates (order read from the column, never guessed) and --date-format."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from contract.errors import ContractError
from events.timestamps import AMBIGUOUS, MIXED, NOT_A_DATE, parse_timestamps


def _utc(*args: int) -> pd.Timestamp:
    return pd.Timestamp(dt.datetime(*args, tzinfo=dt.UTC))


def test_month_first_export_reads_as_month_first() -> None:
    """The classic retail export writes ``12/1/2010 8:26`` for 1 December; a day above 12 in the second
    place anywhere in the column settles the order."""
    got = parse_timestamps(pd.Series(["12/1/2010 8:26", "12/13/2010 8:26 PM", "1/4/2011 12:05:09 AM"]))
    assert list(got.error) == [None, None, None]
    assert list(got.values) == [
        _utc(2010, 12, 1, 8, 26),
        _utc(2010, 12, 13, 20, 26),
        _utc(2011, 1, 4, 0, 5, 9),
    ]


def test_day_first_dates_with_dots_and_two_digit_years() -> None:
    got = parse_timestamps(pd.Series(["31.12.1980", "01.02.75", "1-2-05 07:30:00.25"]))
    assert list(got.error) == [None, None, None]
    assert list(got.values) == [_utc(1980, 12, 31), _utc(1975, 2, 1), _utc(2005, 2, 1, 7, 30, 0, 250_000)]


def test_naive_day_month_year_follows_tz() -> None:
    got = parse_timestamps(pd.Series(["13/07/2024 10:00"]), tz="Europe/Paris")
    assert got.values[0] == _utc(2024, 7, 13, 8)
    assert parse_timestamps(pd.Series(["13/07/2024 10:00"]), tz=None).error[0].startswith("no timezone")


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        (["01/02/2024", "03/04/2024"], AMBIGUOUS),  # could be either: rejected, not guessed
        (["13/01/2024", "01/13/2024"], MIXED),
    ],
)
def test_an_undecidable_order_is_refused_with_the_reason(values: list[str], reason: str) -> None:
    got = parse_timestamps(pd.Series(values))
    assert got.values.isna().all() and list(got.error) == [reason] * len(values)
    assert "--date-format" in reason


def test_impossible_dates_and_hours_name_the_value_only() -> None:
    got = parse_timestamps(
        pd.Series(["31/02/2024", "13/01/2024 13:00 PM", "14/01/2024", "2024-01-15T00:00:00Z"])
    )
    assert list(got.error) == [NOT_A_DATE, NOT_A_DATE, None, None]
    assert got.values[2] == _utc(2024, 1, 14) and got.values[3] == _utc(2024, 1, 15)


def test_date_format_reads_what_the_guess_cannot() -> None:
    got = parse_timestamps(
        pd.Series(["01/02/2024 08:26", "01-Dec-2010 08:26", None]), date_format="%d/%m/%Y %H:%M"
    )
    assert got.values[0] == _utc(2024, 2, 1, 8, 26)
    assert got.error[1] == "does not match the date format '%d/%m/%Y %H:%M' (--date-format)"
    assert got.error[2] == "required"
    months = parse_timestamps(
        pd.Series(["01-Dec-2010 08:26"]), date_format="%d-%b-%Y %H:%M", tz="Europe/London"
    )
    assert months.values[0] == _utc(2010, 12, 1, 8, 26)
    aware = parse_timestamps(pd.Series(["01/12/2010 08:26 +0100"]), date_format="%d/%m/%Y %H:%M %z", tz=None)
    assert list(aware.error) == [None] and aware.values[0] == _utc(2010, 12, 1, 7, 26)


def test_a_date_format_without_directives_is_refused() -> None:
    with pytest.raises(ContractError, match="date_format"):
        parse_timestamps(pd.Series(["2024"]), date_format="YYYY-MM-DD")
