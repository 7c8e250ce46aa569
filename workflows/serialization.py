"""Timestamp normalisation shared by all workflow types (the seed's `ensure_utc`)."""

from __future__ import annotations

from datetime import datetime, timezone


class TimestampError(ValueError):
    """A value that is not a datetime or an ISO-8601 string with a UTC offset."""


def ensure_utc(value: datetime | str) -> datetime:
    """Return an aware UTC datetime.

    Naive datetimes are taken to be UTC (what the seed's naive timestamps meant); aware
    ones are converted from any offset; strings must be ISO-8601 with `Z` or an explicit
    offset, because a string without one cannot be placed in time. Anything else raises
    TimestampError naming what was given.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        except ValueError:
            raise TimestampError(f"not an ISO-8601 timestamp: {value!r}") from None
        if parsed.tzinfo is None:
            raise TimestampError(f"timestamp {value!r} has no UTC offset; add 'Z' or e.g. '+02:00'")
        return parsed.astimezone(timezone.utc)
    raise TimestampError(f"expected a datetime or an ISO-8601 string, got {type(value).__name__} {value!r}")


def utc_iso(value: datetime | str) -> str:
    """The one textual form of a timestamp in hashes and exports: UTC, microseconds, `Z`."""
    return ensure_utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
