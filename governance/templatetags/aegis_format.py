"""One timestamp format for every page: `{{ value|when }}`.

The server renders UTC (`2026-12-03 09:00 UTC`) inside a `<time>` element whose
`datetime` attribute is exact; base.html's script rewrites the text into the reader's
own time zone (the browser's) in the same shape, and the hover title keeps the UTC time
to the second. Without JavaScript the page still reads correctly, in UTC.
"""

from __future__ import annotations

from datetime import date, datetime, timezone as dt_timezone

from django import template
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html

register = template.Library()


def as_utc(value) -> datetime | date | None:
    """A datetime (aware, or naive meaning UTC) or an ISO-8601 string as an aware UTC
    datetime; a date as it is; None for anything else."""
    if isinstance(value, str):
        value = parse_datetime(value)
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt_timezone.utc)).astimezone(dt_timezone.utc)
    return value if isinstance(value, date) else None


def utc_text(value) -> str:
    """The visible text of `when` for plain-text places (flash messages): "2026-12-03 09:00 UTC"."""
    moment = as_utc(value)
    if isinstance(moment, datetime):
        return moment.strftime("%Y-%m-%d %H:%M UTC")
    return moment.isoformat() if moment is not None else str(value or "")


@register.filter(is_safe=True)
def when(value):
    """A datetime (aware, or naive meaning UTC), an ISO-8601 string, or a date."""
    if value in (None, ""):
        return "—"
    moment = as_utc(value)
    if isinstance(moment, datetime):
        return format_html('<time class="ts" datetime="{}" title="{} UTC">{}</time>',
                           moment.isoformat().replace("+00:00", "Z"), moment.strftime("%Y-%m-%d %H:%M:%S"),
                           utc_text(moment))
    if moment is not None:
        return format_html('<time datetime="{}">{}</time>', moment.isoformat(), moment.isoformat())
    return value
