"""Issue 13's page fixes in a real browser: the project's 404 and 403 pages (the 403 names
the missing permission), the telemetry page readable at 1280 px and 390 px (its Data column
wide enough to read, no sideways overflow), times shown in the browser's time zone with UTC
on hover, warning badges and messages in the warning colour, and a 390 px sweep of the main
pages. Screenshots: test-artifacts/screenshots/pages-*."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone as dt_timezone
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone
from playwright.sync_api import expect

from calibration import services as calibration_services
from governance import services
from governance.engine.inputs import parse_proposal
from governance.models import Decision, DriftBaseline, DriftReport, TelemetryEvent, Tier
from governance.telemetry import Event
from workflows.roles import RISK_LEAD_GROUP, SECURITY_LEAD_GROUP
from workflows.services import actor_for

PASSWORD = "Correct-Horse-Battery-9"
WIDE, NARROW = {"width": 1280, "height": 900}, {"width": 390, "height": 844}
MISSING = "00000000-0000-4000-8000-000000000000"


def make_user(username: str, *groups: str, staff: bool = True):
    user = get_user_model().objects.create_user(username, password=PASSWORD, is_staff=staff)
    user.groups.add(*(Group.objects.get(name=name) for name in groups))
    return user


def assert_fits(page) -> None:
    """The page never scrolls sideways: wide tables scroll inside their own box."""
    scroll_width, inner_width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll_width <= inner_width, f"{page.url} is {scroll_width} px wide on a {inner_width} px screen"


def decide(customer, summary: str, now=None, **inputs) -> Decision:
    body = services.evaluate_proposal(services.CallContext(customer=customer, api_key=None),
                                      parse_proposal({"proposal_summary": summary, **inputs}), now=now)
    return Decision.objects.get(decision_id=body["decision_id"])


def drift_history(customer) -> None:
    """A baseline and three reports: normal, warning, critical."""
    baseline = DriftBaseline.objects.create(customer=customer, values=[0.1] * 40, source="uploaded base.csv",
                                            created_by="risklead")
    today = timezone.now().date()
    for days_ago, status, kl in [(2, "normal", 0.05), (1, "warning", 0.33), (0, "critical", 0.61)]:
        DriftReport.objects.create(customer=customer, day=today - timedelta(days=days_ago), baseline=baseline,
                                   kl_divergence=kl, status=status, action="x", message="m", n_current=80,
                                   n_baseline=40, tau_warning=0.3, tau_critical=0.5, config_version=1)


def many_events(count: int) -> None:
    now = timezone.now()
    TelemetryEvent.objects.bulk_create([TelemetryEvent(
        name=Event.DECISION_MADE, actor="pricing-bot", subject=f"dec_{i}", request_id=f"req_{i:032x}",
        occurred_at=now - timedelta(minutes=i),
        data={"status": "proceed", "gates": {g: True for g in ("risk", "profit", "novelty", "complexity",
                                                                  "quality", "utility")},
              "latency_seconds": 0.0123, "shadow": False, "note": "x" * 120}) for i in range(count)])


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_error_pages_are_the_projects_and_the_403_names_the_permission(browser_page, live_server, login, logout,
                                                                        screenshot):
    page = browser_page
    make_user("risklead", RISK_LEAD_GROUP)
    make_user("staffer")

    login(page, live_server, "risklead", PASSWORD)
    for path in (f"/decisions/{MISSING}/", f"/workflows/{MISSING}/", f"/calibration/{MISSING}/", "/drift/cus_nope/"):
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == 404
        expect(page.locator("#error-title")).to_have_text("Page not found (404)")
        expect(page.locator("header .brand")).to_have_text("AEGIS")
    screenshot(page, "pages-01-404-missing-drift-tenant")
    logout(page)

    login(page, live_server, "staffer", PASSWORD)
    response = page.goto(f"{live_server.url}/telemetry/")
    assert response.status == 403
    expect(page.locator("#error-title")).to_have_text("Not allowed (403)")
    expect(page.locator("#error-reason")).to_have_text(
        "/telemetry/ needs the permission governance.view_telemetryevent "
        "(Risk Lead and Security Lead groups have it).")
    screenshot(page, "pages-02-403-telemetry-names-the-permission")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("viewport", [WIDE, NARROW], ids=["1280", "390"])
def test_a_security_lead_reads_the_telemetry_page_at_any_width(browser_page, live_server, login, screenshot,
                                                                viewport):
    page = browser_page
    page.set_viewport_size(viewport)
    make_user("securitylead", SECURITY_LEAD_GROUP, staff=False)
    many_events(50)

    login(page, live_server, "securitylead", PASSWORD)
    with page.expect_navigation():
        page.click("header a:has-text('Telemetry')")
    expect(page.locator("#telemetry-events tbody tr")).to_have_count(50)
    assert_fits(page)
    data_width = page.locator("#telemetry-events tbody tr").first.locator("td.data").bounding_box()["width"]
    assert data_width >= 250, f"the Data column is {data_width:.0f} px wide"
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height < 50 * 260, f"the page is {height} px tall for 50 events"
    full = screenshot(page, f"pages-03-telemetry-{viewport['width']}")
    page.screenshot(path=str(full.with_name(f"{full.stem}-top.png")))  # the first screenful, readable


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_times_show_in_the_browsers_time_zone_with_utc_on_hover(browser_page, live_server, screenshot):
    make_user("risklead", RISK_LEAD_GROUP)
    acme, _, _ = services.create_customer("Acme Payments", tier=Tier.objects.get(name="team"))
    moment = datetime(2026, 12, 3, 9, 5, tzinfo=dt_timezone.utc)
    decision = decide(acme, "Cache the currency rate table", now=moment)

    context = browser_page.context.browser.new_context(timezone_id="Asia/Tokyo", viewport=WIDE)
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}/accounts/login/")
        page.fill("#id_username", "risklead")
        page.fill("#id_password", PASSWORD)
        with page.expect_navigation():
            page.click("main form button[type=submit]")
        page.goto(f"{live_server.url}/decisions/{decision.decision_id}/")
        shown = page.locator("time.ts").first
        local = moment.astimezone(ZoneInfo("Asia/Tokyo"))
        expect(shown).to_have_text(local.strftime("%Y-%m-%d %H:%M") + " GMT+9")
        expect(shown).to_have_attribute("title", "2026-12-03 09:05:00 UTC")
        screenshot(page, "pages-04-decision-time-in-tokyo")
    finally:
        context.close()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_warning_and_critical_are_in_warning_and_danger_colours(browser_page, live_server, login, screenshot):
    page = browser_page
    make_user("risklead", RISK_LEAD_GROUP)
    acme, _, _ = services.create_customer("Acme Payments", tier=Tier.objects.get(name="team"))
    drift_history(acme)

    login(page, live_server, "risklead", PASSWORD)
    page.goto(f"{live_server.url}/drift/{acme.customer_id}/")
    colours = page.evaluate("""() => Object.fromEntries(['normal', 'warning', 'critical'].map(s =>
        [s, getComputedStyle(document.querySelector('#drift-reports .badge.' + s)).color]))""")
    variables = page.evaluate("""() => { const css = getComputedStyle(document.documentElement);
        const rgb = v => { const el = document.createElement('span'); el.style.color = css.getPropertyValue(v);
          document.body.appendChild(el); const c = getComputedStyle(el).color; el.remove(); return c; };
        return {normal: rgb('--ok'), warning: rgb('--warn'), critical: rgb('--bad')}; }""")
    assert colours == variables
    screenshot(page, "pages-05-drift-badges")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_no_main_page_overflows_sideways_on_a_phone(browser_page, live_server, login, screenshot):
    page = browser_page
    page.set_viewport_size(NARROW)
    lead = make_user("risklead", RISK_LEAD_GROUP, SECURITY_LEAD_GROUP)
    acme, _, _ = services.create_customer("Acme Payments International", tier=Tier.objects.get(name="team"))
    decision = decide(acme, "Novel payments router for card-not-present traffic in every region at once",
                      novelty_score=0.9, agent_id="router-agent-with-a-rather-long-name-0123456789")
    drift_history(acme)
    proposal = calibration_services.propose("tau_warning", 0.25, "Warnings come too late for the EU tenants; "
                                            "lower the threshold.", actor=actor_for(lead))
    many_events(10)

    login(page, live_server, "risklead", PASSWORD)
    paths = ["/workflows/", "/decisions/", f"/decisions/{decision.decision_id}/", "/calibration/",
             "/calibration/new/", "/calibration/versions/", f"/calibration/{proposal.proposal_id}/", "/drift/",
             f"/drift/{acme.customer_id}/", "/telemetry/", f"/decisions/{MISSING}/"]
    for number, path in enumerate(paths, start=1):
        page.goto(f"{live_server.url}{path}")
        assert_fits(page)
        screenshot(page, f"pages-06-phone-{number:02d}-{path.strip('/').split('/')[0] or 'home'}")
