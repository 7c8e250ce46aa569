"""The telemetry page in a real browser: an administrator signs in, opens Telemetry from the
header, filters by type and actor, sees only the matching events, and a wrong time window
is answered with a form error naming the field."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from playwright.sync_api import expect

from governance.models import TelemetryEvent
from governance.telemetry import Event

PASSWORD = "Correct-Horse-Battery-9"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_admin_filters_telemetry_by_type_and_actor(browser_page, live_server, login, screenshot):
    page = browser_page
    get_user_model().objects.create_superuser("admin", password=PASSWORD)
    now = timezone.now().replace(microsecond=0)
    for minutes, name, actor, subject in [
            (50, Event.DECISION_MADE, "alice", "dec_1"), (40, Event.DECISION_MADE, "bob", "dec_2"),
            (30, Event.WORKFLOW_TRANSITION, "alice", "wf_1"), (20, Event.DECISION_MADE, "Alice", "dec_3"),
            (10, Event.DECISION_MADE, "alice", "dec_4"), (5, Event.DRIFT_REPORT, "", "cus_1")]:
        TelemetryEvent.objects.create(name=name, actor=actor, subject=subject, request_id=f"req_{subject}",
                                      occurred_at=now - timedelta(minutes=minutes), data={"subject": subject})

    login(page, live_server, "admin", PASSWORD)
    with page.expect_navigation():
        page.click("header a:has-text('Telemetry')")
    expect(page.locator("h1")).to_have_text("Telemetry events")
    rows = page.locator("#telemetry-events tbody tr")
    expect(rows).to_have_count(6)
    screenshot(page, "telemetry-01-all-events")

    page.select_option("#id_type", "decision.made")
    page.fill("#id_actor", "alice")
    with page.expect_navigation():
        page.click("#telemetry-filters button[type=submit]")
    expect(rows).to_have_count(2)
    expect(rows.locator("td.subject .subject-id")).to_have_text(["dec_4", "dec_1"])  # newest first; not "Alice" nor bob
    for i in range(2):
        expect(rows.nth(i).locator("td.type")).to_have_text("decision.made")
        expect(rows.nth(i).locator("td.actor")).to_have_text("alice")
    expect(rows.first.locator("td.data")).to_have_text('{"subject":"dec_4"}')
    expect(page.locator("#id_type")).to_have_value("decision.made")  # the form keeps the filters
    expect(page.locator("#id_actor")).to_have_value("alice")
    screenshot(page, "telemetry-02-filtered-by-type-and-actor")

    page.fill("#id_since", (now - timedelta(minutes=15)).strftime("%Y-%m-%dT%H:%M:%S"))
    page.fill("#id_until", (now - timedelta(minutes=45)).strftime("%Y-%m-%dT%H:%M:%S"))
    with page.expect_navigation():
        page.click("#telemetry-filters button[type=submit]")
    expect(page.locator("#filter-errors li[data-field=until]")).to_contain_text("To (UTC): “To” must be later")
    expect(page.locator("#telemetry-events")).to_have_count(0)
    screenshot(page, "telemetry-03-invalid-window")

    page.fill("#id_since", (now - timedelta(minutes=55)).strftime("%Y-%m-%dT%H:%M:%S"))
    page.fill("#id_until", (now - timedelta(minutes=15)).strftime("%Y-%m-%dT%H:%M:%S"))
    with page.expect_navigation():
        page.click("#telemetry-filters button[type=submit]")
    expect(page.locator("#filter-errors")).to_have_count(0)
    expect(rows.locator("td.subject .subject-id")).to_have_text(["dec_1"])
    screenshot(page, "telemetry-04-type-actor-and-window")
