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


@register.filter(is_safe=True)
def when(value):
    """A datetime (aware, or naive meaning UTC), an ISO-8601 string, or a date."""
    if value in (None, ""):
        return "—"
    if isinstance(value, str):
        parsed = parse_datetime(value)
        if parsed is None:
            return value
        value = parsed
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt_timezone.utc)
        utc = value.astimezone(dt_timezone.utc)
        return format_html(
            '<time class="ts" datetime="{}" title="{} UTC">{} UTC</time>',
            utc.isoformat().replace("+00:00", "Z"),
            utc.strftime("%Y-%m-%d %H:%M:%S"),
            utc.strftime("%Y-%m-%d %H:%M"),
        )
    if isinstance(value, date):
        return format_html('<time datetime="{}">{}</time>', value.isoformat(), value.isoformat())
    return value
