"""The telemetry page under /telemetry/ and `governance.telemetry.list_events` behind it:
who may read events (anonymous → login, no permission → 403, the view permission or a
superuser → the page), filters by type, actor, time window and their combination,
invalid filters answered with form errors (never a 500), keyset pagination that keeps
the filters, and the read-only TelemetryEvent admin."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser, Permission
from django.core.exceptions import PermissionDenied
from django.test import Client

from governance import telemetry
from governance.models import TelemetryEvent
from governance.telemetry import Event, emit, list_events
from governance.telemetry_views import decode_cursor, encode_cursor

pytestmark = pytest.mark.django_db

URL = "/telemetry/"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
ANONYMOUS, NO_PERMISSION, PERMISSION, SUPERUSER = "anonymous", "no_permission", "permission", "superuser"


def make_user(username: str, *, permission: bool = False, superuser: bool = False):
    users = get_user_model().objects
    if superuser:
        return users.create_superuser(username, password=None)
    user = users.create_user(username, password=None)
    if permission:
        user.user_permissions.add(Permission.objects.get(content_type__app_label="governance",
                                                         codename="view_telemetryevent"))
    return get_user_model().objects.get(pk=user.pk)  # a fresh object: no stale permission cache


def client_for(kind: str) -> Client:
    client = Client()
    if kind == NO_PERMISSION:
        client.force_login(make_user("nina"))
    elif kind == PERMISSION:
        client.force_login(make_user("vera", permission=True))
    elif kind == SUPERUSER:
        client.force_login(make_user("root", superuser=True))
    return client


@pytest.fixture
def viewer() -> Client:
    return client_for(PERMISSION)


def get(client: Client, params: dict | str | None = None):
    """GET /telemetry/ over https (the test settings redirect plain http)."""
    if isinstance(params, str):
        return client.get(f"{URL}?{params}", secure=True)
    return client.get(URL, params or {}, secure=True)


def event(name: Event, actor: str, minutes: int, subject: str, **data) -> TelemetryEvent:
    return TelemetryEvent.objects.create(name=name, actor=actor, subject=subject, occurred_at=T0 + timedelta(
        minutes=minutes), data=data, request_id=f"req_{subject}")


def at(minutes: int) -> str:
    """A datetime-local value (UTC) `minutes` after T0."""
    return (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S")


def subjects(response) -> list[str]:
    assert response.status_code == 200, response.content[:500]
    return [row["subject"] for row in response.context["events"]]


@pytest.fixture
def events():
    """Six events an hour apart: three types, actors differing only in case, one without."""
    return [event(Event.DECISION_MADE, "alice", 0, "e1", status="proceed"),
            event(Event.DECISION_MADE, "bob", 60, "e2", status="halt"),
            event(Event.WORKFLOW_TRANSITION, "alice", 120, "e3", workflow_type="proposal"),
            event(Event.WORKFLOW_TRANSITION, "Alice", 180, "e4", workflow_type="override"),
            event(Event.DRIFT_REPORT, "", 240, "e5", tenant="cus_1"),
            event(Event.DECISION_MADE, "alice", 300, "e6", status="pause")]


# --- who may read ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", [ANONYMOUS, NO_PERMISSION, PERMISSION, SUPERUSER])
def test_access(kind, events):
    response = get(client_for(kind))
    if kind == ANONYMOUS:
        assert response.status_code == 302 and response["Location"] == f"/accounts/login/?next={URL}"
    elif kind == NO_PERMISSION:
        assert response.status_code == 403
        shown = response.content.split(b"<main>", 1)[-1]  # the 403 page's own CSS names the status badges
        assert b"proceed" not in shown and b"alice" not in response.content  # not hex: never in an id
    else:
        assert subjects(response) == ["e6", "e5", "e4", "e3", "e2", "e1"]
        html = response.content.decode()
        assert "<h1>Telemetry events</h1>" in html
        assert 'href="/telemetry/">Telemetry</a>' in html  # the nav link
        assert "req_e1" in html and "{&quot;status&quot;:&quot;proceed&quot;}" in html  # compact JSON


@pytest.mark.parametrize("kind", [ANONYMOUS, NO_PERMISSION])
def test_refused_whatever_the_filters(kind, events):
    client = client_for(kind)
    for params in ({"type": "decision.made"}, {"type": "no.such.type"}, {"since": "garbage"}):
        response = get(client, params)
        assert response.status_code == (302 if kind == ANONYMOUS else 403)


@pytest.mark.parametrize("kind", [ANONYMOUS, NO_PERMISSION, PERMISSION, SUPERUSER])
def test_list_events_checks_the_permission_itself(kind, events):
    user = {ANONYMOUS: AnonymousUser, NO_PERMISSION: lambda: make_user("nina"),
            PERMISSION: lambda: make_user("vera", permission=True),
            SUPERUSER: lambda: make_user("root", superuser=True)}[kind]()
    if kind in (ANONYMOUS, NO_PERMISSION):
        with pytest.raises(PermissionDenied):
            list_events(actor_user=user)
        with pytest.raises(PermissionDenied):
            list_events(actor_user=None)
    else:
        assert [e.subject for e in list_events(actor_user=user).events] == ["e6", "e5", "e4", "e3", "e2", "e1"]


def test_the_nav_link_is_only_for_those_who_may_read(events):
    assert 'href="/telemetry/"' not in client_for(NO_PERMISSION).get("/drift/", secure=True).content.decode()
    assert 'href="/telemetry/"' in client_for(PERMISSION).get("/drift/", secure=True).content.decode()


# --- filters --------------------------------------------------------------------------------

@pytest.mark.parametrize("params, expected", [
    ({}, ["e6", "e5", "e4", "e3", "e2", "e1"]),
    ({"type": "", "actor": "", "since": "", "until": ""}, ["e6", "e5", "e4", "e3", "e2", "e1"]),
    # type
    ({"type": "decision.made"}, ["e6", "e2", "e1"]),
    ({"type": "drift.report"}, ["e5"]),
    ({"type": "backup.failed"}, []),
    # actor: exact and case-sensitive
    ({"actor": "alice"}, ["e6", "e3", "e1"]),
    ({"actor": "Alice"}, ["e4"]),
    ({"actor": "ali"}, []),
    ({"actor": "  bob "}, ["e2"]),  # surrounding blanks of the input are ignored
    # time: from inclusive, to exclusive
    ({"since": at(60)}, ["e6", "e5", "e4", "e3", "e2"]),
    ({"until": at(60)}, ["e1"]),
    ({"since": at(60), "until": at(240)}, ["e4", "e3", "e2"]),
    ({"since": at(61), "until": at(239)}, ["e4", "e3"]),
    ({"since": (T0 + timedelta(minutes=120)).strftime("%Y-%m-%dT%H:%M")}, ["e6", "e5", "e4", "e3"]),  # no seconds
    # combinations
    ({"type": "decision.made", "actor": "alice"}, ["e6", "e1"]),
    ({"type": "workflow.transition", "actor": "alice", "since": at(0)}, ["e3"]),
    ({"actor": "alice", "since": at(1), "until": at(300)}, ["e3"]),
    ({"type": "decision.made", "actor": "alice", "since": at(0), "until": at(301)}, ["e6", "e1"]),
    ({"type": "decision.made", "actor": "bob", "since": at(120)}, []),
])
def test_filters_return_exactly_the_matching_events(viewer, events, params, expected):
    response = get(viewer, params)
    assert subjects(response) == expected
    assert not response.context["form"].errors
    assert response.context["next_query"] is None
    if not expected:
        assert "No events match these filters." in response.content.decode()


def test_the_form_shows_the_filters_it_applied(viewer, events):
    html = get(viewer, {"type": "drift.report", "actor": "bob", "since": at(5)}).content.decode()
    assert '<option value="drift.report" selected>' in html
    assert 'value="bob"' in html and f'value="{at(5)}"' in html
    options = re.findall(r'<option value="([^"]*)"', html)
    assert options == [""] + [e.value for e in Event]  # "any", then the registry


def test_events_emitted_by_the_services_are_listed(viewer):
    emit(Event.OVERRIDE_REQUESTED, actor="carol", subject="wf_1", data={"justification": "needed"},
         request_id="req_9")
    emit(Event.BACKUP_SUCCEEDED, subject="backup-1", data={"bytes": 10})
    response = get(viewer, {"actor": "carol"})
    [row] = response.context["events"]
    assert (row["name"], row["actor"], row["subject"], row["request_id"]) == (
        "override.requested", "carol", "wf_1", "req_9")
    assert row["data"] == '{"justification":"needed"}'
    assert subjects(get(viewer, {"type": "backup.succeeded"})) == ["backup-1"]


# --- invalid filters: a form error naming the field, never a 500 ------------------------------

@pytest.mark.parametrize("params, field, label, message", [
    ({"type": "no.such.type"}, "type", "Type", "Select a valid choice"),
    ({"since": "2026-13-45T10:00"}, "since", "From (UTC)", "Enter a valid date/time"),
    ({"until": "yesterday"}, "until", "To (UTC)", "Enter a valid date/time"),
    ({"since": at(120), "until": at(60)}, "until", "To (UTC)", "“To” must be later than “From”"),
    ({"since": at(60), "until": at(60)}, "until", "To (UTC)", "“To” must be later than “From”"),
    ({"actor": "x" * 201}, "actor", "Actor", "at most 200 characters"),
    ({"cursor": "not-a-cursor"}, "cursor", "Page", "This page link is not valid"),
    ({"cursor": "99999999999999999999999-1"}, "cursor", "Page", "This page link is not valid"),
])
def test_invalid_filters_are_form_errors(viewer, events, params, field, label, message):
    response = get(viewer, {"actor": "alice", **params})
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert list(errors) == [field] and message in " ".join(errors[field])
    html = response.content.decode()
    assert 'id="filter-errors"' in html and f'data-field="{field}"' in html
    assert f"<strong>{label}:</strong>" in html
    assert response.context["events"] == [] and 'id="telemetry-events"' not in html


def test_several_invalid_filters_are_all_reported(viewer, events):
    response = get(viewer, {"type": "nope", "since": "bad", "until": "worse"})
    assert response.status_code == 200
    assert set(response.context["form"].errors) == {"type", "since", "until"}


def test_list_events_refuses_an_unknown_type(events):
    with pytest.raises(ValueError):
        list_events(actor_user=make_user("root", superuser=True), event_type="no.such.type")


# --- pagination -----------------------------------------------------------------------------

def next_params(response) -> dict | None:
    query = response.context["next_query"]
    if query is None:
        assert 'id="next-page"' not in response.content.decode()
        return None
    assert f'href="?{query.replace("&", "&amp;")}"' in response.content.decode()
    return {key: values[-1] for key, values in parse_qs(query, keep_blank_values=True).items()}


def without_cursor(params: dict) -> dict:
    return {key: value for key, value in params.items() if key != "cursor"}


def all_pages(client: Client, params: dict) -> list[list[str]]:
    pages = []
    while params is not None:
        response = get(client, params)
        pages.append(subjects(response))
        following = next_params(response)
        if following is not None:  # the filters are kept, only the cursor changes
            assert following["cursor"] != params.get("cursor")
            assert without_cursor(following) == without_cursor(params)
        params = following
    return pages


def test_pagination_keeps_the_filters(viewer):
    # 130 events, alternating actors, some sharing one timestamp (the id breaks the tie).
    for i in range(130):
        event(Event.DECISION_MADE if i % 3 else Event.WORKFLOW_TRANSITION, "alice" if i % 2 else "bob",
              i // 4, f"s{i:03d}")
    event(Event.DECISION_MADE, "alice", 10_000, "outside-the-window")
    newest_first = [f"s{i:03d}" for i in reversed(range(130))]

    everything = all_pages(viewer, {})
    assert [len(p) for p in everything] == [50, 50, 31]
    assert sum(everything, []) == ["outside-the-window"] + newest_first

    params = {"actor": "alice", "since": at(0), "until": at(1_000)}
    alice = all_pages(viewer, params)
    assert [len(p) for p in alice] == [50, 15]
    assert sum(alice, []) == [s for s in newest_first if int(s[1:]) % 2]

    params = {"type": "decision.made", "actor": "bob", "until": at(1_000)}
    bob = all_pages(viewer, params)
    expected = [s for s in newest_first if int(s[1:]) % 2 == 0 and int(s[1:]) % 3]
    assert sum(bob, []) == expected and len(bob[0]) == min(50, len(expected))


def test_the_next_link_keeps_every_filter_and_a_first_page_link_returns(viewer):
    for i in range(60):
        event(Event.DECISION_MADE, "alice", i, f"s{i:02d}")
    params = {"type": "decision.made", "actor": "alice", "since": at(0), "until": at(100)}
    first = get(viewer, params)
    following = next_params(first)
    assert following.pop("cursor") and following == params
    assert 'id="first-page"' not in first.content.decode()
    second = get(viewer, first.context["next_query"])
    assert subjects(second) == [f"s{i:02d}" for i in reversed(range(10))]
    html = second.content.decode()
    first_link = re.search(r'href="\?([^"]*)" id="first-page"', html).group(1).replace("&amp;", "&")
    assert subjects(get(viewer, first_link)) == subjects(first)


def test_events_appended_meanwhile_do_not_shift_the_pages(viewer):
    for i in range(60):
        event(Event.DECISION_MADE, "alice", i, f"s{i:02d}")
    first = get(viewer, {})
    for i in range(5):
        event(Event.DECISION_MADE, "alice", 500 + i, f"new{i}")
    assert subjects(get(viewer, first.context["next_query"])) == [f"s{i:02d}" for i in reversed(range(10))]


def test_the_actor_search_is_bounded_and_continues_on_the_next_page(events):
    root = make_user("root", superuser=True)
    for i in range(30):
        event(Event.DECISION_MADE, "bob", 1_000 + i, f"b{i}")
    event(Event.DECISION_MADE, "carol", 2_000, "c-new")
    event(Event.DECISION_MADE, "carol", 500, "c-old")  # 30 bob events and more lie between the two

    page = list_events(actor_user=root, actor="carol", limit=5, scan_limit=10)
    assert [e.subject for e in page.events] == ["c-new"] and page.cut_short and page.scanned == 10
    found = [e.subject for e in page.events]
    while page.next_before is not None:
        page = list_events(actor_user=root, actor="carol", limit=5, scan_limit=10, before=page.next_before)
        assert page.scanned <= 10
        found += [e.subject for e in page.events]
    assert found == ["c-new", "c-old"]


def test_a_full_page_stops_reading(events):
    root = make_user("root", superuser=True)
    page = list_events(actor_user=root, limit=2)
    assert [e.subject for e in page.events] == ["e6", "e5"] and page.scanned == 3 and not page.cut_short
    page = list_events(actor_user=root, actor="alice", limit=1)
    assert [e.subject for e in page.events] == ["e6"] and page.scanned == 4  # e6, e5, e4, then e3 proves a next page
    assert page.next_before == (T0 + timedelta(minutes=300), TelemetryEvent.objects.get(subject="e6").pk)


def test_page_cursors_round_trip():
    for when in (T0, T0 + timedelta(microseconds=1), datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc)):
        assert decode_cursor(encode_cursor((when, 42))) == (when, 42)
    for bad in ("", "1", "-1", "a-1", "1-", "1-b", "1--2"):
        with pytest.raises(ValueError):
            decode_cursor(bad)


def test_the_page_size_is_fifty():
    assert telemetry.PAGE_SIZE == 50


# --- the admin ------------------------------------------------------------------------------

def test_the_admin_lists_events_read_only(events):
    admin = client_for(SUPERUSER)
    changelist = admin.get("/admin/governance/telemetryevent/", secure=True)
    assert changelist.status_code == 200
    html = changelist.content.decode()
    assert "e1" in html and "e6" in html
    assert 'name="q"' not in html  # no search box (actor is encrypted)
    assert admin.get("/admin/governance/telemetryevent/?name=drift.report", secure=True).status_code == 200
    assert admin.get("/admin/governance/telemetryevent/add/", secure=True).status_code == 403
    pk = events[0].pk
    detail = admin.get(f"/admin/governance/telemetryevent/{pk}/change/", secure=True)
    assert detail.status_code == 200 and 'name="_save"' not in detail.content.decode()
    assert admin.post(f"/admin/governance/telemetryevent/{pk}/delete/", {"post": "yes"},
                      secure=True).status_code == 403
    assert TelemetryEvent.objects.filter(pk=pk).exists()
    from django.contrib import admin as django_admin
    model_admin = django_admin.site._registry[TelemetryEvent]
    assert model_admin.list_display == ("name", "occurred_at", "actor", "subject")
    assert model_admin.list_filter == ("name", "occurred_at") and not model_admin.search_fields
