"""HTTP-date (RFC 9110 §5.6.7), one row per rule; hostile bytes never raise."""

from __future__ import annotations

import calendar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from origin_proxy.fields import format_http_date, parse_http_date

# Sun, 06 Nov 1994 08:49:37 GMT, the example date of RFC 9110 §5.6.7.
EXAMPLE = 784111777


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(b"Sun, 06 Nov 1994 08:49:37 GMT", EXAMPLE, id="imf-fixdate"),
        pytest.param(b"Sunday, 06-Nov-94 08:49:37 GMT", EXAMPLE, id="rfc850"),
        pytest.param(b"Sun Nov  6 08:49:37 1994", EXAMPLE, id="asctime"),
        pytest.param(b"Sun Nov 06 08:49:37 1994", EXAMPLE, id="asctime-two-digit-day"),
        # Letter case: caches commonly accept it, and nothing is guessed at.
        pytest.param(b"SUN, 06 NOV 1994 08:49:37 gmt", EXAMPLE, id="imf-any-case"),
        pytest.param(b"sunday, 06-nov-94 08:49:37 Gmt", EXAMPLE, id="rfc850-any-case"),
        pytest.param(b"sun nov  6 08:49:37 1994", EXAMPLE, id="asctime-any-case"),
        # RFC 850's two-digit years: the window of RFC 9110's rule as of 2026.
        pytest.param(b"Thursday, 18-Aug-50 02:01:18 GMT",
                     calendar.timegm((2050, 8, 18, 2, 1, 18)), id="rfc850-50-is-2050"),
        pytest.param(b"Saturday, 01-Jan-00 00:00:00 GMT",
                     calendar.timegm((2000, 1, 1, 0, 0, 0)), id="rfc850-00-is-2000"),
        pytest.param(b"Friday, 31-Dec-76 23:59:59 GMT",
                     calendar.timegm((2076, 12, 31, 23, 59, 59)), id="rfc850-76-is-2076"),
        pytest.param(b"Saturday, 01-Jan-77 00:00:00 GMT",
                     calendar.timegm((1977, 1, 1, 0, 0, 0)), id="rfc850-77-is-1977"),
        pytest.param(b"Sun, 06 Nov 1994 23:59:60 GMT",
                     calendar.timegm((1994, 11, 7, 0, 0, 0)), id="leap-second"),
        pytest.param(b"Thu, 29 Feb 2024 00:00:00 GMT",
                     calendar.timegm((2024, 2, 29, 0, 0, 0)), id="leap-day"),
        pytest.param(b"Sun, 06 Nov 1994 08:49:37 UTC", None, id="not-gmt"),
        pytest.param(b"Sun 06 Nov 1994 08:49:37 GMT", None, id="no-comma"),
        pytest.param(b"Sun, 6 Nov 1994 08:49:37 GMT", None, id="one-digit-day"),
        pytest.param(b"Sun, 06 Nov 94 08:49:37 GMT", None, id="imf-two-digit-year"),
        pytest.param(b"Sun, 06-Nov-1994 08:49:37 GMT", None, id="imf-with-dashes"),
        pytest.param(b"Sun,  06 Nov 1994 08:49:37 GMT", None, id="double-space"),
        pytest.param(b" Sun, 06 Nov 1994 08:49:37 GMT", None, id="leading-space"),
        pytest.param(b"Sun, 06 Nov 1994 8:49:37 GMT", None, id="one-digit-hour"),
        pytest.param(b"Sun, 31 Feb 1994 08:49:37 GMT", None, id="no-such-day"),
        pytest.param(b"Tue, 29 Feb 2100 00:00:00 GMT", None, id="no-leap-day-in-2100"),
        pytest.param(b"Sun, 06 Nov 1994 24:00:00 GMT", None, id="hour-24"),
        pytest.param(b"Sun, 06 Nov 1994 08:60:00 GMT", None, id="minute-60"),
        pytest.param(b"Sun, 06 Nov 1994 08:49:61 GMT", None, id="second-61"),
        pytest.param(b"Sun, 06 Foo 1994 08:49:37 GMT", None, id="bad-month"),
        pytest.param(b"Sun, 06 Nov 1994 08:49 GMT", None, id="no-seconds"),
        pytest.param(b"Sun, 06 Nov 0000 08:49:37 GMT", None, id="year-zero"),
        pytest.param(b"Sun Nov  6 08:49:37 0000", None, id="asctime-year-zero"),
        pytest.param(b"Sun, 06 Nov 1994 08:49:37 GMT, Sun, 06 Nov 1994 08:49:37 GMT", None,
                     id="two-dates"),
        pytest.param("Sun, ٠٦ Nov 1994 08:49:37 GMT".encode(), None, id="non-ascii-digits"),
        pytest.param(b"Sunday, 06-Nov-9x 08:49:37 GMT", None, id="rfc850-bad-year"),
        pytest.param(b"\xff", None, id="not-ascii"),
        pytest.param(b"0", None, id="a-number"),
        pytest.param(b"", None, id="empty"),
    ],
)  # fmt: skip
def test_parse_http_date(value: bytes, expected: int | None) -> None:
    assert parse_http_date(value) == expected


@pytest.mark.parametrize(
    ("epoch_seconds", "expected"),
    [
        pytest.param(EXAMPLE, b"Sun, 06 Nov 1994 08:49:37 GMT", id="rfc-example"),
        pytest.param(0, b"Thu, 01 Jan 1970 00:00:00 GMT", id="epoch"),
        pytest.param(951_782_400, b"Tue, 29 Feb 2000 00:00:00 GMT", id="leap-day"),
        pytest.param(253_402_300_799, b"Fri, 31 Dec 9999 23:59:59 GMT", id="last-four-digit"),
    ],
)
def test_format_http_date(epoch_seconds: int, expected: bytes) -> None:
    assert format_http_date(epoch_seconds) == expected


@given(st.integers(min_value=0, max_value=253_402_300_799))
def test_a_formatted_date_parses_back(epoch_seconds: int) -> None:
    assert parse_http_date(format_http_date(epoch_seconds)) == epoch_seconds


DATE_PIECES = st.sampled_from(
    ["Sun", "Sunday", "sun", "Nov", "NOV", "Foo", "GMT", "gmt", "UTC", ",", " ", "  ", "-",
     ":", "06", "6", "94", "1994", "0000", "9999", "08:49:37", "24:00:00", "31", "29", "Feb",
     "\t", "\x00", "\u0660"]
)  # fmt: skip


@given(st.binary(max_size=64))
def test_any_bytes_parse_or_are_none(value: bytes) -> None:
    parsed = parse_http_date(value)
    assert parsed is None or isinstance(parsed, int)


@given(st.lists(DATE_PIECES, max_size=12).map("".join))
def test_near_dates_parse_or_are_none(text: str) -> None:
    parsed = parse_http_date(text.encode())
    if parsed is not None:
        # Whatever parses is a real instant that writes back in the canonical form.
        assert parse_http_date(format_http_date(parsed)) == parsed
