"""Issue 13, error pages and page fixes: the project's 404 for a missing id on every page
(DEBUG on or off; API paths keep their JSON), a 403 that names the missing permission and
who holds it, the telemetry page open to the Risk Lead and Security Lead groups (a data
migration), the one timestamp format, round chart ticks, linked preview examples, favicon."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime, timezone as dt_timezone

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.template import Context, Template
from django.test import Client, override_settings

from calibration.charts import drift_chart_svg, round_ticks
from governance import services
from governance.models import Tier
from governance.templatetags.aegis_format import when
from workflows.roles import RISK_LEAD_GROUP, SECURITY_LEAD_GROUP

DEBUG_MODES = [pytest.param(False, id="debug-off"), pytest.param(True, id="debug-on")]
PAGE_LOOK = b'<span class="brand">AEGIS</span>'
MISSING = "00000000-0000-4000-8000-000000000000"
MISSING_ID_PAGES = [f"/decisions/{MISSING}/", f"/workflows/{MISSING}/", f"/calibration/{MISSING}/",
                    "/drift/cus_no_such_tenant/", "/decisions/not-an-id/", "/calibration/versions/7/"]


def client_as(user=None) -> Client:
    """A client answering errors as a browser sees them (never re-raising the view's error)."""
    browser = Client(raise_request_exception=False)
    if user is not None:
        browser.force_login(user)
    return browser


def member_of(username: str, *groups: str, staff: bool = True) -> User:
    user = User.objects.create_user(username, password=None, is_staff=staff)
    user.groups.add(*(Group.objects.get(name=name) for name in groups))
    return user


def assert_project_page(response, status: int, heading: bytes) -> str:
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("text/html")
    assert PAGE_LOOK in response.content and heading in response.content
    for debug_marker in (b"URLconf", b"Traceback", b"Using the URLconf", b"DEBUG = True", b"No such endpoint"):
        assert debug_marker not in response.content
    return response.content.decode()


# --- 404 -------------------------------------------------------------------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize("debug", DEBUG_MODES)
@pytest.mark.parametrize("path", MISSING_ID_PAGES)
def test_a_page_for_a_missing_id_is_the_project_404_with_debug_on_or_off(debug, path):
    browser = client_as(member_of("rita", RISK_LEAD_GROUP))
    with override_settings(DEBUG=debug):
        response = browser.get(path, secure=True)

    page = assert_project_page(response, 404, b"Page not found (404)")
    assert path in page and ">Log out</button>" in page  # rendered for the signed-in reader


@pytest.mark.django_db
@pytest.mark.parametrize("debug", DEBUG_MODES)
@pytest.mark.parametrize("path", ["/api/workflows/" + MISSING, "/customer/decisions/x/y", "/no/such/path"])
def test_api_and_client_paths_keep_their_json_404(debug, path):
    with override_settings(DEBUG=debug):
        response = client_as(member_of("rita", RISK_LEAD_GROUP)).get(path, secure=True)

    assert response.status_code == 404 and response["Content-Type"].startswith("application/json")
    assert response.json()["code"] == "not_found"


# --- 403 and the telemetry permission ---------------------------------------------------------------

ANONYMOUS, STAFF_WITHOUT_PERMISSION, RISK_LEAD, SECURITY_LEAD = "anonymous", "staff", "risk lead", "security lead"


@pytest.mark.django_db
@pytest.mark.parametrize("debug", DEBUG_MODES)
@pytest.mark.parametrize("who", [ANONYMOUS, STAFF_WITHOUT_PERMISSION, RISK_LEAD, SECURITY_LEAD])
def test_the_telemetry_page_is_open_to_both_role_groups_and_says_what_is_missing_to_others(debug, who):
    users = {STAFF_WITHOUT_PERMISSION: lambda: member_of("sam"), RISK_LEAD: lambda: member_of("rita", RISK_LEAD_GROUP),
             SECURITY_LEAD: lambda: member_of("sid", SECURITY_LEAD_GROUP, staff=False)}
    browser = client_as(users[who]() if who in users else None)
    with override_settings(DEBUG=debug):
        response = browser.get("/telemetry/", secure=True)

    if who == ANONYMOUS:
        assert response.status_code == 302 and response["Location"] == "/accounts/login/?next=/telemetry/"
    elif who == STAFF_WITHOUT_PERMISSION:
        page = assert_project_page(response, 403, b"Not allowed (403)")
        assert ("/telemetry/ needs the permission governance.view_telemetryevent "
                "(Risk Lead and Security Lead groups have it).") in page
        assert b'{"error"' not in response.content
    else:
        assert response.status_code == 200 and b"<h1>Telemetry events</h1>" in response.content


BEFORE = [("governance", "0013_usage_all_channels")]


def holders() -> set[str]:
    return set(Group.objects.filter(permissions__codename="view_telemetryevent",
                                    permissions__content_type__app_label="governance").values_list("name", flat=True))


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_migration_grants_the_permission_to_both_groups_and_takes_it_back():
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    assert holders() >= {RISK_LEAD_GROUP, SECURITY_LEAD_GROUP}
    try:
        MigrationExecutor(connection).migrate(BEFORE)
        assert holders().isdisjoint({RISK_LEAD_GROUP, SECURITY_LEAD_GROUP})
        assert Permission.objects.filter(codename="view_telemetryevent").exists()  # only the grant goes
        MigrationExecutor(connection).migrate(latest)
        assert holders() >= {RISK_LEAD_GROUP, SECURITY_LEAD_GROUP}
    finally:
        MigrationExecutor(connection).migrate(latest)


@pytest.mark.django_db
def test_a_refusal_without_any_holding_group_says_whom_to_ask():
    Group.objects.get(name=RISK_LEAD_GROUP).permissions.clear()
    Group.objects.get(name=SECURITY_LEAD_GROUP).permissions.clear()
    page = client_as(member_of("sam")).get("/telemetry/", secure=True).content.decode()
    assert "no group has it; an administrator can grant it to your account" in page


# --- timestamps -------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, shown, exact", [
    (datetime(2026, 12, 3, 9, 0, 36, 425129, tzinfo=dt_timezone.utc), "2026-12-03 09:00 UTC",
     "2026-12-03T09:00:36.425129Z"),
    (datetime(2026, 12, 3, 10, 30, tzinfo=dt_timezone(__import__("datetime").timedelta(hours=2))),
     "2026-12-03 08:30 UTC", "2026-12-03T08:30:00Z"),
    (datetime(2026, 12, 2, 8, 58, 54), "2026-12-02 08:58 UTC", "2026-12-02T08:58:54Z"),  # naive means UTC
    ("2026-12-03T09:00:36.425129Z", "2026-12-03 09:00 UTC", "2026-12-03T09:00:36.425129Z"),
], ids=["aware-utc", "other-offset", "naive", "iso-string"])
def test_when_renders_utc_in_a_time_element_with_the_exact_moment_and_utc_title(value, shown, exact):
    html = str(when(value))
    seconds = exact[:19].replace("T", " ")
    assert html == f'<time class="ts" datetime="{exact}" title="{seconds} UTC">{shown}</time>'


def test_when_for_a_day_nothing_or_text_that_is_not_a_time():
    assert str(when(date(2026, 12, 2))) == '<time datetime="2026-12-02">2026-12-02</time>'
    assert when(None) == "—" and when("") == "—"
    assert str(Template("{% load aegis_format %}{{ v|when }}").render(Context({"v": "<b>soon</b>"}))) == \
        "&lt;b&gt;soon&lt;/b&gt;"  # not a time: shown as text, escaped


def test_no_page_template_formats_a_date_itself():
    """One timestamp format: every template renders times with |when (the workflows inbox is
    rebuilt by the home-page work of the same issue)."""
    from pathlib import Path

    offenders = [str(path) for path in Path(".").glob("*/templates/**/*.html")
                 if "inbox.html" not in path.name and re.search(r"\|date\b|\}\} UTC", path.read_text())]
    offenders += [str(path) for path in Path("templates").glob("**/*.html")
                  if re.search(r"\|date\b|\}\} UTC", path.read_text())]
    assert offenders == []


# --- charts -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("highest, ticks", [
    (0.5, [0, 0.1, 0.2, 0.3, 0.4, 0.5]),
    (0.575, [0, 0.2, 0.4, 0.6]),
    (0.05, [0, 0.01, 0.02, 0.03, 0.04, 0.05]),
    (3.7, [0, 1, 2, 3, 4]),
    (12, [0, 5, 10, 15]),
    (0.0, [0, 0.2, 0.4, 0.6, 0.8, 1.0]),
])
def test_ticks_are_round_steps_of_one_two_or_five_times_a_power_of_ten(highest, ticks):
    assert round_ticks(highest) == pytest.approx(ticks)


def test_the_drift_chart_labels_its_axis_with_round_ticks():
    svg = drift_chart_svg([(date(2026, 12, 1), 0.2, "normal"), (date(2026, 12, 2), 0.31, "warning")],
                          tau_warning=0.3, tau_critical=0.43)
    labels = re.findall(r'data-tick="([^"]+)"', svg)
    assert labels == ["0", "0.1", "0.2", "0.3", "0.4", "0.5"]  # max 0.43 x 1.15 = 0.49 -> 0.5


# --- preview examples -------------------------------------------------------------------------------

@pytest.mark.django_db
def test_impact_preview_examples_link_to_their_decision_pages_with_tenant_and_summary(monkeypatch):
    from calibration import services as calibration_services
    from calibration import views as calibration_views
    from governance.engine.inputs import parse_proposal
    from governance.models import Decision

    customer, _, _ = services.create_customer("Globex", tier=Tier.objects.get(name="team"))
    body = services.evaluate_proposal(services.CallContext(customer=customer, api_key=None), parse_proposal(
        {"proposal_summary": "Ship the rate cache", "risk_proposed": 0.1}))
    decision = Decision.objects.get(decision_id=body["decision_id"])
    preview = calibration_services.ImpactPreview(
        parameter="tau_warning", current_value=0.3, proposed_value=0.2, window_days=30, decisions=1, changed=1,
        changes={"proceed → halt": 1}, examples={"proceed → halt": [str(decision.decision_id), str(uuid.uuid4())]},
        seconds=0.01, drift_reports=0, drift_changes={}, drift_examples=[])

    [(change, count, examples)] = calibration_views._preview_rows(preview)
    assert (change, count, examples) == ("proceed → halt", 1, [decision])
    html = Template("{% include 'calibration/_preview_examples.html' %}").render(
        Context({"examples": examples, "user": member_of("rita", RISK_LEAD_GROUP)}))
    assert f'href="/decisions/{decision.decision_id}/"' in html and "Globex · Ship the rate cache" in html


# --- favicon ----------------------------------------------------------------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize("debug", DEBUG_MODES)
def test_the_favicon_is_served_and_favicon_ico_does_not_404(debug):
    with override_settings(DEBUG=debug):
        browser = client_as()
        redirected = browser.get("/favicon.ico", secure=True)
        assert redirected.status_code == 301 and redirected["Location"].endswith(".svg")
        icon = browser.get(redirected["Location"], secure=True)
    assert icon.status_code == 200 and icon["Content-Type"].startswith("image/svg+xml")
    assert b"<svg" in b"".join(icon.streaming_content if icon.streaming else [icon.content])


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_pages_and_the_admin_link_the_favicon(path):
    page = client_as().get(path, secure=True).content.decode()
    assert re.search(r'<link rel="icon" type="image/svg\+xml" href="/static/aegis/favicon[^"]*\.svg">', page)


@pytest.mark.django_db
@pytest.mark.parametrize("debug", DEBUG_MODES)
@pytest.mark.parametrize(("path", "target"), [
    ("/telemetry", "/telemetry/"), (f"/decisions/{MISSING}", f"/decisions/{MISSING}/"),
    ("/drift/cus_x?from=inbox", "/drift/cus_x/?from=inbox"), ("/calibration/versions", "/calibration/versions/")])
def test_a_page_typed_without_its_trailing_slash_is_redirected_not_answered_with_json(debug, path, target):
    """Regression (issue 13): APPEND_SLASH is off for the API, so a page path without its
    trailing slash was not a "page path" and answered the JSON "No such endpoint"."""
    browser = client_as(member_of("rita", RISK_LEAD_GROUP))
    with override_settings(DEBUG=debug):
        response = browser.get(path, secure=True)

    assert response.status_code == 301 and response["Location"] == target


@pytest.mark.django_db
def test_a_page_path_without_slash_that_matches_nothing_is_the_project_404_and_posts_are_not_redirected():
    browser = client_as(member_of("rita", RISK_LEAD_GROUP))
    assert_project_page(browser.get("/decisions/not/a/page", secure=True), 404, b"Page not found (404)")
    assert_project_page(browser.post("/telemetry", secure=True), 404, b"Page not found (404)")
    assert browser.get("/api/workflows", secure=True).status_code != 301  # API paths are never redirected


# --- telemetry rows say what they are about -----------------------------------------------------

@pytest.mark.parametrize(("name", "subject", "link"), [
    ("decision.made", MISSING, f"/decisions/{MISSING}/"),
    ("calibration.approved", MISSING, f"/calibration/{MISSING}/"),
    ("override.requested", MISSING, f"/workflows/{MISSING}/"),
    ("drift.report_replaced", "cus_abc", "/drift/cus_abc/"),
    ("decision.made", "dec_1", None),  # not an id of a decision page
    ("backup.succeeded", "aegis-backup-2026-12-03.json.gz", None),  # no page of its own
    ("no.such.event", MISSING, None),
])
def test_a_telemetry_subject_links_to_the_page_of_what_it_is_about(name, subject, link):
    from governance.telemetry_views import subject_link

    assert subject_link(name, subject) == link


@pytest.mark.django_db
def test_telemetry_rows_describe_their_event_and_link_its_subject():
    from governance.models import TelemetryEvent

    TelemetryEvent.objects.create(name="drift.report", actor="aegis-drift", subject="cus_abc", data={"kl": 0.3})
    page = client_as(member_of("rita", RISK_LEAD_GROUP)).get("/telemetry/", secure=True).content.decode()
    assert '<div class="about muted">A daily drift report was stored.</div>' in page
    assert '<a href="/drift/cus_abc/">cus_abc</a>' in page and '<pre class="json">{&quot;kl&quot;:0.3}</pre>' in page


# --- the drift re-run verb checks its role --------------------------------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize("roles", [frozenset(), frozenset({"security_lead"})], ids=["no role", "security lead"])
def test_rerunning_a_drift_report_needs_the_risk_lead_role(roles):
    from governance import drift
    from governance.models import DriftReport, TelemetryEvent
    from workflows.machines import Actor

    customer, _, _ = services.create_customer("Acme", tier=Tier.objects.get(name="team"))
    with pytest.raises(drift.DriftError, match="running the drift check needs the Risk Lead role"):
        drift.rerun_drift_report(customer, date(2026, 12, 3), actor=Actor(name="sam", id=1, roles=roles))
    assert not DriftReport.objects.exists()
    assert not TelemetryEvent.objects.filter(name__startswith="drift.").exists()
