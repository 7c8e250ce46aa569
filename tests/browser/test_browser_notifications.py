"""Notifications end to end: a tenant's integration gets a halt and asks for the override
through the real API; the custodians' emails arrive at a real SMTP server and the signed
webhook at a real HTTP receiver on 127.0.0.1; the security lead turns emails off on the
profile page; the risk lead follows the link in the email and signs, and the security
lead, now waited for, gets no email (the webhook still reports it); the administrator
sees every delivery in the admin."""

from __future__ import annotations

import hashlib
import hmac
import re
import sys
from pathlib import Path

import httpx
import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "notifications"))

from governance import services  # noqa: E402
from governance.models import Tier  # noqa: E402
from notifications.models import NotificationDelivery  # noqa: E402
from notify_support import PASSWORD, WEBHOOK_SECRET, WebhookReceiver, make_user, smtp_server  # noqa: E402
from workflows.roles import RISK_LEAD_GROUP, SECURITY_LEAD_GROUP  # noqa: E402

LINK = re.compile(r"Open it here: (\S+)")


def received(inbox) -> dict[str, object]:
    """{recipient address: message} of what the SMTP server received."""
    return {to: message for recipients, message in inbox.messages for to in recipients}


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_override_request_emails_and_posts_and_the_profile_opt_out_holds(
        browser_page, live_server, login, logout, screenshot, settings):
    page = browser_page
    make_user("risklead", RISK_LEAD_GROUP, password=PASSWORD)
    security = make_user("securitylead", SECURITY_LEAD_GROUP, password=PASSWORD)
    get_user_model().objects.create_superuser("admin", "admin@example.com", PASSWORD)
    _, _, key = services.create_customer("Acme Payments", tier=Tier.objects.get_or_create(
        name="team", defaults={"display_name": "Team", "monthly_evaluations": 10_000, "rate_per_minute": 600,
                               "max_keys": 5})[0])

    with smtp_server() as (port, inbox), WebhookReceiver() as hook:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
        settings.AEGIS_WEBHOOK_URL, settings.AEGIS_WEBHOOK_SECRET = hook.url, WEBHOOK_SECRET
        settings.AEGIS_PUBLIC_URL = live_server.url

        # --- the integration: a halt, and the override it offers, through the API ------------
        auth = {"Authorization": f"Bearer {key}"}
        evaluated = httpx.post(f"{live_server.url}/evaluate", headers=auth, json={
            "proposal_summary": "Ship the novel ranking model to all regions", "novelty_score": 0.9})
        assert evaluated.status_code == 200 and evaluated.json()["status"] == "halt", evaluated.text
        decision_id = evaluated.json()["decision_id"]
        assert inbox.messages == [] and hook.requests == []  # a halt alone waits for nobody
        requested = httpx.post(f"{live_server.url}/api/decisions/{decision_id}/override", headers=auth,
                               json={"justification": "Revenue-critical launch; rollback plan in PR 42"})
        assert requested.status_code == 201, requested.text
        override_url = f"{live_server.url}/workflows/{requested.json()['workflow_id']}/"

        # Both custodians are asked by email, and the webhook says the same, signed.
        emails = received(inbox)
        assert set(emails) == {"risklead@example.com", "securitylead@example.com"}
        subject = f"Override of decision {decision_id[:8]} for Acme Payments needs a risk_lead or security_lead signature"
        assert emails["risklead@example.com"]["Subject"] == f"[AEGIS] {subject}"
        assert LINK.search(emails["risklead@example.com"].get_content()).group(1) == override_url
        assert len(hook.requests) == 1
        headers, body = hook.requests[0]
        assert headers["x-aegis-signature"] == "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), body,
                                                                    hashlib.sha256).hexdigest()
        assert hook.bodies()[0]["subject"] == subject and hook.bodies()[0]["url"] == override_url

        # --- the security lead turns emails off on the profile page --------------------------
        login(page, live_server, "securitylead", PASSWORD)
        with page.expect_navigation():
            page.click("header a[href='/profile/']")
        expect(page.locator("h1")).to_have_text("Your profile")
        expect(page.locator("#profile-email")).to_have_text("securitylead@example.com")
        expect(page.locator("#email-notifications-state")).to_have_text("on")
        expect(page.locator("#recent-notifications")).to_contain_text(subject)
        screenshot(page, "notifications-1-profile-emails-on")
        with page.expect_navigation():
            page.click("#email-notifications-form button[type=submit]")
        expect(page.locator(".messages li.success")).to_have_text("Email notifications are now off.")
        expect(page.locator("#email-notifications-state")).to_have_text("off")
        expect(page.locator("#email-notifications-form button")).to_have_text("Turn email notifications on")
        screenshot(page, "notifications-2-profile-emails-off")
        logout(page)

        # --- the risk lead follows the email's link and signs the first key ------------------
        login(page, live_server, "risklead", PASSWORD)
        page.goto(LINK.search(emails["risklead@example.com"].get_content()).group(1))
        page.fill("#approve-comment", "Risk reviewed: acceptable with the rollback plan")
        with page.expect_navigation():
            page.click("form[data-event=approve] button[type=submit]")
        expect(page.locator("#current-state")).to_have_text("Partially approved")
        logout(page)

        # Now only the security lead is waited for: no email (opted out), the webhook says so.
        assert len(hook.requests) == 2
        assert hook.bodies()[1]["subject"].endswith("needs a security_lead signature")
        assert len(inbox.messages) == 2
    waiting = NotificationDelivery.objects.filter(channel="email", event__subject__endswith="needs a security_lead signature")
    assert [(d.user_id, d.status, d.last_error) for d in waiting] == [
        (security.pk, "skipped", "the user turned email notifications off")]

    # --- the administrator sees the deliveries ---------------------------------------------
    login(page, live_server, "admin", PASSWORD)
    page.goto(f"{live_server.url}/admin/notifications/notificationdelivery/")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(5)  # two emails and a webhook, then a skipped email and a webhook
    expect(page.locator("#result_list")).to_contain_text("the user turned email notifications off")
    page.click("#toggle-nav-sidebar")  # the list's columns, not the admin's app list
    screenshot(page, "notifications-3-admin-deliveries")
    page.goto(f"{live_server.url}/admin/notifications/notificationdelivery/?status__exact=skipped")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("securitylead")
