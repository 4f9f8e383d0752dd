"""HTTP-date (RFC 9110 §5.6.7): parsing its three formats, writing IMF-fixdate.

Day and month names and `GMT` are read in any letter case (`THU, 18 AUG 2050 ... gMT`), as
caches commonly accept; any other deviation (no comma, `UTC`, a two-digit year in IMF-fixdate,
dashes, a one-digit hour, extra spaces) makes the value invalid rather than guessed at.

The obsolete RFC 850 format has a two-digit year. RFC 9110 reads one that "appears to be more
than 50 years in the future" as in the past century, which needs the current year; this module
reads no clock, so the window is fixed at 1977-2076, what that rule gives in 2026. A date of
the present reads right until 2076; RFC 850 dates have not been sent since the 1990s.
"""

from __future__ import annotations

import calendar
import datetime
import functools
from typing import Final

__all__ = ["format_http_date", "parse_http_date"]

_DAY_NAMES: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTH_NAMES: Final = (
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
)  # fmt: skip
_DAYS: Final = frozenset(name.lower() for name in _DAY_NAMES)
_LONG_DAYS: Final = frozenset(
    {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}
)
_MONTHS: Final = {name.lower(): number for number, name in enumerate(_MONTH_NAMES, start=1)}

# The two-digit years of RFC 850 dates: 77..99 are 1977..1999, 00..76 are 2000..2076.
_CENTURY_PIVOT: Final = 77

# 1970-01-01 as a proleptic Gregorian ordinal (datetime.date.toordinal).
_EPOCH_ORDINAL: Final = 719_163


@functools.lru_cache(maxsize=1024)
def format_http_date(epoch_seconds: int) -> bytes:
    """RFC 9110 §5.6.7 IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`."""
    days, seconds = divmod(epoch_seconds, 86_400)
    day = datetime.date.fromordinal(_EPOCH_ORDINAL + days)
    hour, rest = divmod(seconds, 3600)
    minute, second = divmod(rest, 60)
    return (
        f"{_DAY_NAMES[day.weekday()]}, {day.day:02d} {_MONTH_NAMES[day.month - 1]} "
        f"{day.year:04d} {hour:02d}:{minute:02d}:{second:02d} GMT"
    ).encode()


def parse_http_date(value: bytes) -> int | None:
    """An HTTP-date in any of its three formats, as epoch seconds, or None when invalid."""
    if len(value) <= _REMEMBERED_BYTES:
        return _parse_remembered(value)
    return _parse(value)


# A cache validates with the same few dates over and over (a stored Last-Modified, the
# If-Modified-Since that echoes it): their values are remembered. Every valid date is shorter
# than this (asctime padded with extra spaces aside), so the memory held stays small.
_REMEMBERED_BYTES: Final = 40


@functools.lru_cache(maxsize=1024)
def _parse_remembered(value: bytes) -> int | None:
    return _parse(value)


def _parse(value: bytes) -> int | None:
    try:
        text = value.decode("ascii")
    except UnicodeDecodeError:
        return None
    parts = text.split()
    if len(parts) == 5 and parts[0].lower() in _DAYS:
        # obsolete asctime: Sun Nov  6 08:49:37 1994 (the day padded with a space)
        if len(parts[2]) not in (1, 2) or len(parts[4]) != 4:
            return None
        month, day, clock, year = parts[1], parts[2], parts[3], parts[4]
    elif " ".join(parts) != text:
        return None  # one space between the parts
    elif len(parts) == 6 and parts[5].upper() == "GMT" and parts[0][:-1].lower() in _DAYS:
        # IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
        if parts[0][-1] != "," or len(parts[1]) != 2 or len(parts[3]) != 4:
            return None
        day, month, year, clock = parts[1], parts[2], parts[3], parts[4]
    elif len(parts) == 4 and parts[3].upper() == "GMT" and parts[0][:-1].lower() in _LONG_DAYS:
        # obsolete RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
        date = parts[1].split("-")
        if parts[0][-1] != "," or len(date) != 3 or len(date[0]) != 2 or len(date[2]) != 2:
            return None
        if not date[2].isdigit():
            return None
        two_digits = int(date[2])
        day, month, clock = date[0], date[1], parts[2]
        year = str((1900 if two_digits >= _CENTURY_PIVOT else 2000) + two_digits)
    else:
        return None
    month_number = _MONTHS.get(month.lower())
    hms = clock.split(":")
    numbers = [day, year, *hms]
    if month_number is None or len(hms) != 3 or not all(n.isdigit() for n in numbers):
        return None
    if any(len(n) != 2 for n in hms):
        return None
    d, y, hour, minute, second = (int(n) for n in numbers)
    if y == 0 or not (1 <= d <= calendar.monthrange(y, month_number)[1]):
        return None
    if hour > 23 or minute > 59 or second > 60:  # 60: a leap second
        return None
    return calendar.timegm((y, month_number, d, hour, minute, second))
