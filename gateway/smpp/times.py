"""SMPP time fields and the other time formats the gateway writes.

Responsible for turning `schedule_delivery_time` / `validity_period` (SMPP 3.4
section 7.1.1) into epoch seconds, and epoch seconds into the absolute SMPP
form, the receipt date (`YYMMDDhhmm`, Appendix B) and RFC 3339 (Common).

What always holds:
- Every epoch value is UTC seconds; nothing here reads a clock: "now" is given.
- `parse_smpp_time` returns None for an empty field, a float otherwise, and
  raises `ValueError` (never anything else) for a malformed one.
- Everything written is ASCII and in UTC.
"""

from __future__ import annotations

import calendar
import math
import re
import time
from functools import lru_cache
from typing import Final

# YYMMDDhhmmss t nn p; re.ASCII so that non-ASCII digits, which int() would
# happily accept, are refused.
_SMPP_TIME: Final = re.compile(r"(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d)(\d\d)([-+R])", re.ASCII)

# SMPP 3.4 allows 00-48 quarter hours; UTC+14:00 (56) exists, so accept up to it.
_MAX_QUARTERS: Final = 56

# A relative period counts a year as 365 days and a month as 30 days: the spec
# gives no calendar, and this is what SMSCs in the wild do.
_YEAR_S: Final = 365 * 86400
_MONTH_S: Final = 30 * 86400


def parse_smpp_time(value: str, now: float) -> float | None:
    """Epoch seconds for an SMPP time field; None for an empty one.

    Absolute times are 20YY. Relative times (`...R`) are added to `now`; their
    fields are durations, so values such as 48 hours are accepted.
    """
    if not value:
        return None
    match = _SMPP_TIME.fullmatch(value)
    if match is None:
        raise ValueError(f"not an SMPP time: {value!r}")
    yy, mo, dd, hh, mi, ss, tenths, nn, sign = match.groups()
    if sign == "R":
        return now + (
            int(yy) * _YEAR_S
            + int(mo) * _MONTH_S
            + int(dd) * 86400
            + int(hh) * 3600
            + int(mi) * 60
            + int(ss)
        )
    quarters = int(nn)
    if quarters > _MAX_QUARTERS:
        raise ValueError(f"UTC offset out of range: {value!r}")
    month, day, hour, minute, second = int(mo), int(dd), int(hh), int(mi), int(ss)
    year = 2000 + int(yy)
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]):
        raise ValueError(f"no such date: {value!r}")
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"no such time of day: {value!r}")
    local = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    offset = quarters * 900
    # The field is local time at UTC+offset ('+') or UTC-offset ('-').
    utc = local - offset if sign == "+" else local + offset
    return utc + int(tenths) / 10


def format_absolute(epoch: float) -> str:
    """`YYMMDDhhmmsst00+` in UTC (SMPP 3.4 section 7.1.1.1)."""
    tenths_total = math.floor(epoch * 10)
    seconds, tenths = divmod(tenths_total, 10)
    return time.strftime("%y%m%d%H%M%S", time.gmtime(seconds)) + f"{tenths}00+"


# A relative time holds at most 99 days in the DD field we fill.
_MAX_RELATIVE_S = 99 * 86400 + 86399


def format_relative(seconds: int) -> str:
    """A relative SMPP time, `000DDhhmmss000R` (SMPP 3.4 section 7.1.1.2).

    Years and months are left at zero (their length is the SMSC's guess);
    the value is clamped to 1 second .. 99 days 23:59:59.
    """
    seconds = min(max(seconds, 1), _MAX_RELATIVE_S)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"0000{days:02d}{hours:02d}{minutes:02d}{secs:02d}000R"


def format_receipt_date(epoch: float) -> str:
    """`YYMMDDhhmm` in UTC, the date form of a delivery receipt (Appendix B)."""
    return _receipt_minute(math.floor(epoch) // 60)


@lru_cache(maxsize=256)
def _receipt_minute(minute: int) -> str:
    # Two dates per receipt, thousands of receipts a second, few distinct minutes.
    return time.strftime("%y%m%d%H%M", time.gmtime(minute * 60))


def rfc3339(epoch: float) -> str:
    """`2017-06-07T15:30:00Z`, the form of Common's own examples (whole seconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(math.floor(epoch)))


# RFC 3339 section 5.6 date-time; a space for the T is what some senders write.
_RFC3339: Final = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(\.\d+)?([Zz]|[+-]\d\d:\d\d)",
    re.ASCII,
)


@lru_cache(maxsize=1024)
def parse_rfc3339(value: str) -> float | None:
    """Epoch seconds for an RFC 3339 date-time (Common's `timestamp`); None for
    anything that is not one: a report with a bad date is still a report.

    Cached: one per report, and the reports of a second share their timestamp."""
    match = _RFC3339.fullmatch(value.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, zone = match.group(7), match.group(8)
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]):
        return None
    if hour > 23 or minute > 59 or second > 60:  # 60: a leap second
        return None
    epoch = calendar.timegm((year, month, day, hour, minute, min(second, 59), 0, 0, 0))
    if zone not in ("Z", "z"):
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 23 or minutes > 59:
            return None
        offset = hours * 3600 + minutes * 60
        epoch -= offset if zone[0] == "+" else -offset
    return epoch + (float(fraction) if fraction else 0.0)


def add_months(epoch: float, months: int) -> float:
    """`epoch` moved by calendar months, the day clamped to the target month's end.

    Common limits scheduling to "3 months ahead" in calendar terms, which no
    fixed number of days matches.
    """
    whole = math.floor(epoch)
    tm = time.gmtime(whole)
    index = tm.tm_year * 12 + (tm.tm_mon - 1) + months
    year, month = divmod(index, 12)
    month += 1
    day = min(tm.tm_mday, calendar.monthrange(year, month)[1])
    moved = calendar.timegm((year, month, day, tm.tm_hour, tm.tm_min, tm.tm_sec, 0, 0, 0))
    return moved + (epoch - whole)
