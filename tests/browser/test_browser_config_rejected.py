"""A forged configuration version seen by a risk lead in a real browser: someone with write
access to the database inserts v2 (no proposal, no approval); the calibration queue says v2
is not served and why, v1 stays active, every page carries the verification alert, and an
/evaluate made meanwhile is decided under v1."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from playwright.sync_api import expect

from calibration.models import ConfigurationVersion
from governance import services as governance_services
from governance.models import Tier
from workflows.operations import verify_all_chains
from test_browser_calibration import PASSWORD, evaluate, make_risk_lead


def insert_forged_v2() -> None:
    table = ConfigurationVersion._meta.db_table
    v1 = ConfigurationVersion.objects.get(version=1)
    parameters = json.dumps({**v1.parameters, "novelty_threshold": 0.99})
    as_json = "CAST(%s AS jsonb)" if connection.vendor == "postgresql" else "%s"
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {table} (version, parameters, content_hash, source, source_ref, author, "
                       f"parent_id, created_at, chain_hash) SELECT 2, {as_json}, 'forged', 'calibration', '', "
                       f"author, id, created_at, '' FROM {table} WHERE version = 1", [parameters])


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_risk_lead_sees_a_forged_version_rejected_and_the_caller_keeps_v1(
        browser_page, live_server, login, screenshot):
    page = browser_page
    alice = make_risk_lead("alice")
    alice.is_staff = True  # the verification alert is shown to staff
    alice.save(update_fields=["is_staff"])
    _, _, key = governance_services.create_customer("Acme", tier=Tier.objects.get(name="team"))
    insert_forged_v2()
    decided = evaluate(live_server, key, {"proposal_summary": "Deploy v2", "novelty_score": 0.9})
    assert decided["config_version"] == 1 and decided["status"] == "halt"  # 0.9 halts under v1's 0.8
    run = verify_all_chains()
    assert run.broken == 2  # rejected, and unknown to the ledger
    assert "configuration version v2: inserted: it is stored but has no ledger entry" in [
        failure["message"] for failure in run.failures]

    login(page, live_server, "alice", PASSWORD)
    page.goto(f"{live_server.url}/calibration/")
    expect(page.locator("#rejected-versions")).to_contain_text("configuration v2")
    expect(page.locator("#rejected-versions")).to_contain_text("v1 stays active")
    expect(page.locator("#audit-alert")).to_contain_text("configuration v2")
    screenshot(page, "config-rejected-queue")
