"""The home page (/): who may open it, what waits for each role (and what does not), the
navigation count, bounded queries, the other sections, the admin's "View site" link, and
the inbox rows built by the same code."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.test import RequestFactory, override_settings
from django.test.utils import CaptureQueriesContext

from governance.models import DriftBaseline, DriftReport
from home_support import (ANONYMOUS, HALT, HALT_COMPLEXITY, NOT_STAFF, PAUSE, RISK_LEAD, RISK_LEAD_2,
                          SECURITY_LEAD, STAFF, SUPERUSER, SecureClient, decide, make_user, nav_count,
                          propose_calibration, request_override, sign_override, tenant, vote_for, waiting_ids)
from workflows import waiting
from workflows.home import home
from workflows.operations import verify_all_chains
from workflows.persistence.models import BackupRun
from workflows.services import actor_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def users():
    return {kind: make_user(kind) for kind in (NOT_STAFF, STAFF, RISK_LEAD, RISK_LEAD_2, SECURITY_LEAD, SUPERUSER)}


@pytest.fixture
def client_for(users):
    def make(kind: str) -> SecureClient:
        client = SecureClient()
        if kind != ANONYMOUS:
            client.force_login(users[kind])
        return client
    return make


@pytest.fixture
def items(users):
    """One of each waiting item, made through the real verbs: a paused decision, a halted
    one with an override requested by the risk lead, a complexity halt, a calibration
    proposal by the risk lead and a consensus naming the security lead."""
    acme = tenant()
    halted = decide(HALT, acme)
    return {"paused": decide(PAUSE, acme), "halted": halted, "complexity": decide(HALT_COMPLEXITY, acme),
            "override": request_override(halted, users[RISK_LEAD]),
            "calibration": propose_calibration(users[RISK_LEAD]),
            "vote": vote_for([users[SECURITY_LEAD].username], customer=acme)}


def ids(items, *names) -> list[str]:
    """The waiting workflow ids of the named items (in the order the page lists them: oldest first)."""
    found = {"paused": str(items["paused"].review_workflow_id), "override": items["override"]["workflow_id"],
             "calibration": str(items["calibration"].workflow.workflow_id), "vote": str(items["vote"].workflow_id)}
    return [found[name] for name in ("paused", "override", "calibration", "vote") if name in names]


# --- who may open it ------------------------------------------------------------------------

@pytest.mark.parametrize("kind, status", [(ANONYMOUS, 302), (NOT_STAFF, 403), (STAFF, 200), (RISK_LEAD, 200),
                                          (SECURITY_LEAD, 200), (SUPERUSER, 200)])
def test_who_may_open_the_home_page(client_for, kind, status):
    response = client_for(kind).get("/")
    assert response.status_code == status
    if kind == ANONYMOUS:
        assert response["Location"] == "/accounts/login/?next=/"
    if status == 200:
        assert "<h1>Waiting for you" in response.content.decode()


def test_a_non_staff_user_is_told_that_staff_status_is_missing(users):
    request = RequestFactory().get("/")
    request.user = users[NOT_STAFF]
    with pytest.raises(PermissionDenied, match="needs staff status"):
        home(request)


@pytest.mark.parametrize("kind, landing", [(STAFF, "/"), (RISK_LEAD, "/"), (NOT_STAFF, "/workflows/")])
def test_signing_in_lands_staff_on_the_home_page_and_others_on_their_inbox(users, kind, landing):
    user = users[kind]
    user.set_password("Correct-Horse-Battery-9")
    user.save()
    response = SecureClient().post("/accounts/login/", {"username": user.username,
                                                        "password": "Correct-Horse-Battery-9"})
    assert response.status_code == 302 and response["Location"] == landing


# --- what waits for whom --------------------------------------------------------------------

@pytest.mark.parametrize("kind, expected", [
    (STAFF, []),  # no role: nothing to sign, approve or review
    (SUPERUSER, []),  # roles come from groups, not from being a superuser
    (RISK_LEAD, ["paused", "override"]),  # never their own calibration proposal
    (RISK_LEAD_2, ["paused", "override", "calibration"]),
    (SECURITY_LEAD, ["override", "vote"]),  # a decision review needs a risk lead
])
def test_what_waits_for_each_role(client_for, items, kind, expected):
    response = client_for(kind).get("/")
    assert waiting_ids(response) == ids(items, *expected)
    assert nav_count(response) == len(expected)


def test_a_signed_override_leaves_the_signer_and_waits_for_the_other_role(client_for, users, items):
    override = items["override"]
    sign_override(override, users[RISK_LEAD])
    assert override["workflow_id"] not in waiting_ids(client_for(RISK_LEAD).get("/"))
    assert override["workflow_id"] not in waiting_ids(client_for(RISK_LEAD_2).get("/"))  # the role is given
    response = client_for(SECURITY_LEAD).get("/")
    assert override["workflow_id"] in waiting_ids(response)
    row = next(r for r in response.context["waiting"] if str(r.workflow.workflow_id) == override["workflow_id"])
    assert row.needs == "needs a security lead signature"
    assert "signed: risk lead (rita)" in row.numbers
    html = response.content.decode()
    assert "needs a security lead signature" in html
    assert f'href="/workflows/{override["workflow_id"]}/" class="button open-row"' in html


def test_each_row_says_what_it_is_and_links_where_one_acts(client_for, items):
    response = client_for(RISK_LEAD_2).get("/")
    rows = {row.workflow.workflow_type: row for row in response.context["waiting"]}
    paused, override, calibration = rows["proposal"], rows["override"], rows["calibration"]

    assert (paused.kind, paused.tenant, paused.summary) == ("Decision review", "Acme Payments",
                                                            "Move the warehouse sync to hourly")
    assert paused.numbers[:3] == ["engine: pause", "risk 0.2 → 0.2", "profit 0.3 → 0.35"]
    assert paused.link == f"/decisions/{items['paused'].decision_id}/"  # the review form is there
    assert paused.needs == "needs a risk lead's review (someone other than the submitter)"

    assert override.kind == "Override signature" and override.summary == "Override of: Novel payments router"
    assert "novelty" in " ".join(override.numbers) and "signed: nobody yet" in override.numbers
    assert override.needs == "needs a risk lead and a security lead signature"
    assert override.deadline is not None and override.link == f"/workflows/{items['override']['workflow_id']}/"

    proposal = items["calibration"]
    assert calibration.kind == "Calibration approval"
    assert calibration.numbers[0] == "novelty_threshold 0.8 → 0.9"
    assert calibration.link == f"/calibration/{proposal.proposal_id}/"

    html = response.content.decode()
    for row in rows.values():
        assert f'href="{row.link}" class="button open-row"' in html
    assert "Move the warehouse sync to hourly" in html and "Acme Payments" in html
    assert re.search(r'<time class="ts" datetime="[^"]+Z"', html)  # the one timestamp format


def test_the_vote_links_to_the_workflow_page_with_its_deadline(client_for, items):
    row = client_for(SECURITY_LEAD).get("/").context["waiting"][-1]
    assert row.kind == "Consensus vote" and row.summary == "Adopt the new gate thresholds"
    assert row.numbers[0] == "0 of 1 voted (0 approve)" and row.needs == "waiting for the votes of sam"
    assert row.link == f"/workflows/{items['vote'].workflow_id}/" and row.deadline is not None


def test_a_waiting_row_leaves_once_acted_on(client_for, items):
    client = client_for(RISK_LEAD_2)
    paused = items["paused"]
    response = client.post(f"/decisions/{paused.decision_id}/events/approve/", {"comment": "Capacity checked"})
    assert response.status_code == 302
    assert str(paused.review_workflow_id) not in waiting_ids(client.get("/"))


# --- the navigation count -------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/", "/workflows/", "/calibration/", "/decisions/"])
def test_the_navigation_count_is_the_home_page_count_on_every_page(client_for, items, path):
    client = client_for(RISK_LEAD_2)
    expected = len(client.get("/").context["waiting"])
    assert expected == 3
    response = client.get(path)
    assert response.status_code == 200
    assert nav_count(response) == expected
    assert 'href="/" id="nav-home"' in response.content.decode()


def test_no_count_and_no_home_link_for_non_staff(client_for, items):
    html = client_for(NOT_STAFF).get("/workflows/").content.decode()
    assert 'id="nav-home"' not in html and 'id="nav-waiting-count"' not in html


def test_no_badge_when_nothing_waits(client_for, items):
    response = client_for(STAFF).get("/workflows/")
    assert 'id="nav-home"' in response.content.decode() and nav_count(response) == 0


# --- bounded queries ------------------------------------------------------------------------

def _queries(client, path: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(path).status_code == 200
    return len(captured)


def _more_items(users, count: int) -> None:
    acme = tenant(f"Tenant {count}")
    for _ in range(count):
        decide(PAUSE, acme)
        request_override(decide(HALT, acme), users[RISK_LEAD])


def test_the_home_page_runs_as_many_queries_for_many_items_as_for_few(client_for, users, items):
    client = client_for(RISK_LEAD_2)
    few = _queries(client, "/")
    _more_items(users, 15)
    assert len(client.get("/").context["waiting"]) == 3 + 30
    assert _queries(client, "/") == few
    assert few <= 25


# The inbox computes what waits anyway: the count shares it (once per request).
@pytest.mark.parametrize("path, extra", [("/workflows/", 0), ("/calibration/", 2), ("/decisions/", 2)])
def test_the_navigation_count_adds_at_most_two_queries(client_for, users, items, path, extra):
    client = client_for(RISK_LEAD_2)
    _more_items(users, 10)
    with_count = _queries(client, path)
    templates = [{**settings.TEMPLATES[0], "OPTIONS": {
        **settings.TEMPLATES[0]["OPTIONS"],
        "context_processors": [p for p in settings.TEMPLATES[0]["OPTIONS"]["context_processors"]
                               if p != "workflows.context_processors.waiting_count"]}}]
    with override_settings(TEMPLATES=templates):
        without = _queries(client, path)
    assert with_count - without == extra


# --- the other sections ---------------------------------------------------------------------

def test_recent_halts_say_why_a_complexity_halt_cannot_be_overridden(client_for, items):
    response = client_for(STAFF).get("/")
    recent = {str(item.decision.decision_id): item for item in response.context["recent"]}
    complexity, halted = recent[str(items["complexity"].decision_id)], recent[str(items["halted"].decision_id)]
    assert str(items["paused"].decision_id) not in recent  # a pause is neither a halt nor an escalation
    assert complexity.override_refusal == "An override of a complexity failure is refused: redesign the proposal instead"
    assert complexity.next_steps[0] == "Redesign: complexity below the hard floor cannot be overridden"
    assert any(n.startswith("complexity 0.1 (threshold") for n in complexity.numbers)
    assert halted.override_workflow_id == items["override"]["workflow_id"]
    html = response.content.decode()
    assert "An override of a complexity failure is refused" in html
    assert f'href="/decisions/{items["complexity"].decision_id}/"' in html
    assert "nothing you can do" not in html.lower()


def test_drift_verification_and_backup_are_shown_with_links(client_for, items):
    acme = items["paused"].customer
    baseline = DriftBaseline.objects.create(customer=acme, values=[0.1, 0.2, 0.3], source="test", created_by="rita")
    for day, kl, status in (("2026-12-01", 0.1, "normal"), ("2026-12-02", 0.3274, "warning")):
        DriftReport.objects.create(customer=acme, day=day, baseline=baseline, kl_divergence=kl, status=status,
                                   action="monitor", message="", n_current=50, n_baseline=3, tau_warning=0.3,
                                   tau_critical=0.5, config_version=1)
    tenant("Quiet Tenant")
    run = verify_all_chains()
    backup = BackupRun.objects.create(day="2026-12-02", path="/backups/x.json.gz", outcome="succeeded",
                                      counts={"decisions": 3, "workflows": 7})
    html = client_for(STAFF).get("/").content.decode()
    drift = html[html.index('<table id="drift">'):]
    drift = drift[:drift.index("</table>")]
    assert f'href="/drift/{acme.customer_id}/">Acme Payments</a>' in drift
    assert '<span class="badge warning">warning</span>' in drift and "0.3274" in drift
    assert "Quiet Tenant" in drift and "no drift report yet" in drift
    audit = html[html.index('id="last-verification"'):]
    assert f'href="/admin/workflows/chainverificationrun/{run.pk}/change/"' in audit
    assert f"of {run.checked} checked" in audit and "all valid" in audit
    assert f'href="/admin/workflows/backuprun/{backup.pk}/change/"' in audit
    assert "3 decisions, 7 workflows" in audit and ">succeeded<" in audit


# --- the admin's "View site" ----------------------------------------------------------------

def test_the_admins_view_site_link_opens_the_home_page(client_for):
    client = client_for(SUPERUSER)
    admin = client.get("/admin/").content.decode()
    assert re.search(r'<a href="/">View site</a>', admin)
    assert client.get("/").status_code == 200


# --- the inbox rows and the calibration workflow page ---------------------------------------

def test_inbox_rows_carry_the_same_context_and_calibration_links_to_its_review(client_for, items):
    response = client_for(RISK_LEAD_2).get("/workflows/")
    assert [str(r.workflow.workflow_id) for r in response.context["waiting"]] == ids(
        items, "paused", "override", "calibration")
    html = response.content.decode()
    waiting_part = html[:html.index("<h2>All workflows</h2>")]
    proposal = items["calibration"]
    assert f'href="/calibration/{proposal.proposal_id}/"' in waiting_part
    assert f'href="/workflows/{proposal.workflow.workflow_id}/"' not in html  # never the refusing generic page
    assert "novelty_threshold 0.8 → 0.9" in waiting_part
    assert "needs a risk lead and a security lead signature" in waiting_part
    everything = html[html.index("<h2>All workflows</h2>"):]
    assert "No override possible: Redesign: complexity below the hard floor cannot be overridden" in everything


def test_the_workflow_page_of_a_calibration_links_to_its_review_page(client_for, items):
    proposal = items["calibration"]
    html = client_for(RISK_LEAD_2).get(f"/workflows/{proposal.workflow.workflow_id}/").content.decode()
    assert f'href="/calibration/{proposal.proposal_id}/">open the calibration review page' in html
    assert "data-event=" not in html  # no form that would be refused


def test_waiting_for_lists_a_security_leads_items_oldest_first(users, items):
    actor = actor_for(users[SECURITY_LEAD])
    assert [str(w.workflow_id) for w, _ in waiting.waiting_for(actor)] == ids(items, "override", "vote")
