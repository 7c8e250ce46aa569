"""The telemetry page under /telemetry/: the append-only telemetry events, filtered by
type, actor and time window, newest first, 50 a page.

Also this page's URLconf (`urlpatterns`, namespace "telemetry"), included by
aegis_site/urls.py. Who may read events, and how they are filtered and paginated, is
decided by `governance.telemetry.list_events`; this module turns the query string into
its arguments (a validated form) and its answer into rows.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django import forms
from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.urls import NoReverseMatch, path, reverse

from . import telemetry
from .telemetry import Event

DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S"  # what <input type=datetime-local step=1> sends and shows
_EPOCH = datetime(1970, 1, 1, tzinfo=dt_timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


def encode_cursor(keyset: tuple[datetime, int]) -> str:
    """`(occurred_at, id)` as "<microseconds since the epoch>-<id>" (URL-safe, exact)."""
    occurred_at, pk = keyset
    return f"{(occurred_at - _EPOCH) // _MICROSECOND}-{pk}"


def page_links(request, next_before: tuple[datetime, int] | None) -> tuple[str | None, str | None]:
    """The query strings of a keyset-paged list's "next page" link (None on the last page)
    and its "first page" link (None on the first page), keeping the request's filters."""
    next_query = first_query = None
    if next_before is not None:
        params = request.GET.copy()
        params["cursor"] = encode_cursor(next_before)
        next_query = params.urlencode()
    if request.GET.get("cursor"):
        params = request.GET.copy()
        del params["cursor"]
        first_query = params.urlencode()
    return next_query, first_query


def decode_cursor(text: str) -> tuple[datetime, int]:
    """The inverse of `encode_cursor`; ValueError for anything else."""
    micros, sep, pk = text.partition("-")
    if not sep or not micros.isdigit() or not pk.isdigit():
        raise ValueError(f"not a page cursor: {text!r}")
    try:
        return _EPOCH + int(micros) * _MICROSECOND, int(pk)
    except OverflowError:
        raise ValueError(f"not a page cursor: {text!r}") from None


class KeysetPagedForm(forms.Form):
    """A filter form whose hidden `cursor` field carries the keyset of the next page."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)

    def clean_cursor(self):
        text = self.cleaned_data["cursor"]
        if not text:
            return None
        try:
            return decode_cursor(text)
        except ValueError:
            raise forms.ValidationError("This page link is not valid; start again from the first page.") from None


def _datetime_input() -> forms.DateTimeInput:
    return forms.DateTimeInput(attrs={"type": "datetime-local", "step": "1"}, format=DATETIME_FORMAT)


class TelemetryFilterForm(KeysetPagedForm):
    """The GET filters. Times are UTC (the site's time zone); the window is from <= t < to."""

    type = forms.ChoiceField(label="Type", required=False,
                             choices=[("", "any")] + [(event.value, event.value) for event in Event])
    actor = forms.CharField(label="Actor", required=False, max_length=200,
                            help_text="Exact, case-sensitive match.")
    since = forms.DateTimeField(label="From (UTC)", required=False, widget=_datetime_input(),
                                help_text="Inclusive.")
    until = forms.DateTimeField(label="To (UTC)", required=False, widget=_datetime_input(),
                                help_text="Exclusive.")
    cursor = forms.CharField(label="Page", required=False, widget=forms.HiddenInput)

    def clean(self):
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since is not None and until is not None and since >= until:
            self.add_error("until", "“To” must be later than “From”.")
        return cleaned

    def filters(self) -> dict:
        """`list_events` keyword arguments (call after is_valid())."""
        data = self.cleaned_data
        return {"event_type": data["type"] or None, "actor": data["actor"] or None,
                "since": data["since"], "until": data["until"], "before": data["cursor"]}


# Event type -> (URL name of the page its subject is the id of, whether that id is a UUID).
_SUBJECT_PAGES = {
    Event.DECISION_MADE: ("decisions:detail", True),
    **{kind: ("calibration:review", True) for kind in (
        Event.CALIBRATION_PROPOSED, Event.CALIBRATION_APPROVED, Event.CALIBRATION_REJECTED,
        Event.CALIBRATION_APPLIED, Event.CALIBRATION_WITHDRAWN)},
    **{kind: ("workflows:detail", True) for kind in (
        Event.CALIBRATION_STALE, Event.WORKFLOW_TRANSITION, Event.OVERRIDE_REQUESTED, Event.OVERRIDE_APPROVED,
        Event.OVERRIDE_REJECTED, Event.OVERRIDE_EXPIRED)},
    Event.DRIFT_REPORT: ("drift:tenant", False),
    Event.DRIFT_REPORT_REPLACED: ("drift:tenant", False),
}


def subject_link(name: str, subject: str) -> str | None:
    """The page of what an event is about (a decision, proposal, workflow, tenant), or None."""
    try:
        url_name, takes_uuid = _SUBJECT_PAGES[name]  # StrEnum keys: a plain name finds them
        return reverse(url_name, args=[uuid.UUID(subject) if takes_uuid else subject])
    except (KeyError, ValueError, NoReverseMatch):
        return None


def _row(event) -> dict:
    return {"id": event.pk, "occurred_at": event.occurred_at, "name": event.name, "actor": event.actor,
            "subject": event.subject, "subject_link": subject_link(event.name, event.subject),
            "about": spec.description if (spec := telemetry.REGISTRY.get(event.name)) else "",
            "request_id": event.request_id,
            "data": json.dumps(event.data, separators=(",", ":"), sort_keys=True, ensure_ascii=False,
                               default=str)}


@login_required
def telemetry_events(request):
    telemetry.check_can_view_events(request.user)  # before reading the filters: 403 whatever they are
    form = TelemetryFilterForm(request.GET if request.GET else None)
    page = None
    if not form.is_bound:
        page = telemetry.list_events(actor_user=request.user)
    elif form.is_valid():
        page = telemetry.list_events(actor_user=request.user, **form.filters())
    next_query, first_query = page_links(request, page.next_before if page is not None else None)
    return render(request, "governance/telemetry.html", {
        "form": form, "page": page, "events": [_row(e) for e in page.events] if page else [],
        "next_query": next_query, "first_query": first_query, "page_size": telemetry.PAGE_SIZE})


app_name = "telemetry"

urlpatterns = [
    path("", telemetry_events, name="events"),
]
