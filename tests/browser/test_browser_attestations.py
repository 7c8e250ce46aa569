"""An attested deployment in a real browser: a pipeline evaluates its change and attests the
artifact with the official client (against the live server), then a risk lead opens the
decision from the Decisions list, follows its attestation to the attestation page and sees
it verify ("valid"), goes back to the decision, then finds it in the Attestations list.
Screenshots: test-artifacts/screenshots/attestations-*."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import timedelta

import pytest
from aegis import Aegis
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone
from playwright.sync_api import expect

from attestations import keys, services as attestation_services
from governance import services
from governance.models import Decision, Tier
from workflows.roles import RISK_LEAD_GROUP

PASSWORD = "Correct-Horse-Battery-9"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_risk_lead_follows_a_decision_to_its_attestation(browser_page, live_server, login, screenshot):
    page = browser_page
    keys.generate_pair()
    lead = get_user_model().objects.create_user("risklead", password=PASSWORD, is_staff=True)
    lead.groups.add(Group.objects.get(name=RISK_LEAD_GROUP))
    _customer, _key, api_key = services.create_customer("Acme Payments", tier=Tier.objects.get(name="team"))

    pipeline = Aegis(api_key, base_url=live_server.url, max_retries=0)
    decided = pipeline.evaluate(proposal_summary="Ship payments-api 1.4.0 with the cached rate table")
    assert decided.status == "proceed"
    artifact = hashlib.sha256(b"payments-api-1.4.0.tar.gz contents").hexdigest()
    attested = pipeline.attestations.attest(
        decision_id=str(uuid.uuid4()), subject_digest_sha256=artifact, environment="production", risk_class="high",
        policy_version="aegis-policy-v1", repository="acme/payments",
        workflow_ref="acme/payments/.github/workflows/ship.yml@refs/heads/main", run_id="9137", run_attempt=1,
        gate_pass_states=attestation_services.decision_gate_states(Decision.objects.get(
            decision_id=decided.decision_id)),
        builder_id="https://github.com/actions/runner", subject_name="payments-api-1.4.0.tar.gz",
        expires_at=(timezone.now() + timedelta(hours=2)).isoformat(),
        aegis_evaluate_decision_id=str(decided.decision_id))

    login(page, live_server, "risklead", PASSWORD)
    with page.expect_navigation():
        page.click("header a:has-text('Decisions')")
    with page.expect_navigation():
        page.click(f"#decision-list a[href='/decisions/{decided.decision_id}/']")
    expect(page.locator("#attestation-count")).to_have_text("1 artifact attested")
    row = page.locator(f"#decision-attestations tr[data-attestation='{attested.decision_id}']")
    expect(row).to_contain_text("production")
    expect(row).to_contain_text(artifact[:16])
    row.scroll_into_view_if_needed()
    screenshot(page, "attestations-01-decision-page")

    with page.expect_navigation():
        row.locator("a").click()
    expect(page.locator("h1")).to_contain_text(str(attested.decision_id))
    expect(page.locator("#verdict .badge")).to_have_text("valid")
    expect(page.locator("#artifact-digest")).to_have_text(f"sha256:{artifact}")
    expect(page.locator("#subject-name")).to_have_text("payments-api-1.4.0.tar.gz")
    expect(page.locator("#signatures tbody tr")).to_have_count(2)
    expect(page.locator("#signatures .badge.active")).to_have_count(2)
    expect(page.locator("#nonce")).to_have_text(re.compile(r"^[0-9a-f]{64}$"))  # high risk: a 256-bit nonce
    expect(page.locator("#issued time.ts")).to_have_count(1)
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280, "the attestation page is wider than 1280 px"
    screenshot(page, "attestations-02-attestation-page")

    with page.expect_navigation():
        page.click(f"#governance-decision a[href='/decisions/{decided.decision_id}/']")
    expect(page.locator("#summary")).to_have_text("Ship payments-api 1.4.0 with the cached rate table")

    with page.expect_navigation():
        page.click("header a:has-text('Attestations')")
    listed = page.locator(f"#attestations tr[data-attestation='{attested.decision_id}']")
    expect(listed.locator(".verdict")).to_have_text("valid")
    expect(listed.locator(".tenant")).to_contain_text("Acme Payments")
    screenshot(page, "attestations-03-list")
