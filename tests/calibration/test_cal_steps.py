"""Who may take which calibration step, in which order (PLATFORM.md §3): four eyes, the
Risk Lead role, people only (never API keys), PROPOSED → APPROVED → APPLIED or REJECTED,
STALE once the parameter changed; the seed's Calibrator example; the audit chains."""

from __future__ import annotations

import pytest
from cal_support import (JUSTIFICATION, approved, assert_chains_valid, events_of, latest_version, make_user,
                         propose, state_of)

from calibration import services
from calibration.calibrator import Calibrator
from calibration.models import CalibrationProposal, ConfigurationVersion
from calibration.services import CalibrationError
from calibration.versions import active_config
from governance.engine import BayesianPosterior, DriftMonitor
from workflows.persistence.durable import DurableWorkflowEngine
from workflows.persistence.models import WorkflowTransition
from workflows.services import actor_for

pytestmark = pytest.mark.django_db

FOUR_EYES = "Four eyes: the approver must be someone other than the proposer"
NEEDS_ROLE = "Approve needs the role risk_lead"


def step_url(proposal, step: str) -> str:
    return f"/api/calibration/proposals/{proposal.proposal_id}/{step}"


# --- four eyes and the role ---------------------------------------------------------------

def test_the_proposer_cannot_approve_their_own_proposal_api(alice, browser):
    proposal = propose(alice)
    response = browser(alice).post_json(step_url(proposal, "approve"), {"comment": "I checked it myself"})
    assert response.status_code == 403
    assert response.json() == {**response.json(), "code": "forbidden", "error": FOUR_EYES}
    assert state_of(proposal) == "proposed"
    assert events_of(proposal) == ["start"]
    assert_chains_valid()


def test_the_proposer_cannot_approve_their_own_proposal_calibrator(alice):
    view = Calibrator(actor_id="alice").propose_calibration("novelty_threshold", 0.9, JUSTIFICATION)
    with pytest.raises(CalibrationError) as refused:
        Calibrator(actor_id="alice").approve(view.proposal_id, approver_id="alice")
    assert (refused.value.code, refused.value.message) == ("forbidden", FOUR_EYES)
    assert Calibrator(actor_id="alice").get(view.proposal_id).status == "PROPOSED"


@pytest.mark.parametrize(("step", "message"), [("approve", NEEDS_ROLE), ("reject", "Reject needs the role risk_lead")])
def test_a_user_without_the_role_cannot_approve_or_reject(step, message, alice, carol, browser):
    proposal = propose(alice)
    response = browser(carol).post_json(step_url(proposal, step), {"comment": "Fine by me"})
    assert response.status_code == 403
    assert response.json()["error"] == message
    assert state_of(proposal) == "proposed"
    assert events_of(proposal) == ["start"]


def test_another_risk_lead_approves_and_the_approval_is_recorded(alice, bob, browser):
    proposal = propose(alice)
    response = browser(bob).post_json(step_url(proposal, "approve"), {"comment": "Drift data supports it"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["approver_id"], body["proposed_by"]) == ("APPROVED", "bob", "alice")
    transition = WorkflowTransition.objects.get(workflow__calibration_proposal__pk=proposal.pk, seq=2)
    assert (transition.to_state, transition.triggered_by, transition.reason) == (
        "approved", "bob", "Drift data supports it")
    assert transition.payload["content_hash"] == proposal.workflow.state_data["content_hash"]
    assert_chains_valid()


def test_approve_and_reject_need_a_comment(alice, bob, browser):
    proposal = propose(alice)
    for step in ("approve", "reject"):
        response = browser(bob).post_json(step_url(proposal, step), {"comment": "  "})
        assert response.status_code == 400
        assert response.json()["error"] == f"{step.capitalize()} needs a comment"
    assert state_of(proposal) == "proposed"


# --- people only: API keys and anonymous callers ---------------------------------------------

ENDPOINTS = [
    ("GET", "/api/calibration/proposals"),
    ("POST", "/api/calibration/proposals"),
    ("POST", "/api/calibration/validate"),
    ("GET", "/api/calibration/proposals/{id}"),
    ("POST", "/api/calibration/proposals/{id}/approve"),
    ("POST", "/api/calibration/proposals/{id}/reject"),
    ("POST", "/api/calibration/proposals/{id}/apply"),
    ("GET", "/api/calibration/proposals/{id}/preview"),
    ("GET", "/api/config"),
    ("GET", "/api/config/versions"),
    ("GET", "/api/config/versions/1"),
    ("GET", "/api/config/versions/diff?a=1&b=1"),
]
BODIES = {"/approve": {"comment": "ok"}, "/reject": {"comment": "no"},
          "/proposals": {"parameter": "novelty_threshold", "new_value": 0.95, "justification": JUSTIFICATION},
          "/validate": {"parameter": "novelty_threshold", "new_value": 0.95}}


def call(client, method, path, proposal):
    path = path.replace("{id}", str(proposal.proposal_id))
    if method == "GET":
        return client.get(path)
    body = next((b for suffix, b in BODIES.items() if path.endswith(suffix)), None)
    return client.post_json(path, body)


def nothing_changed(proposal) -> None:
    assert state_of(proposal) == "approved"
    assert CalibrationProposal.objects.count() == 1
    assert list(ConfigurationVersion.objects.values_list("version", flat=True)) == [1]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize("header", ["Authorization", "X-Api-Key"])
def test_api_keys_are_refused_on_every_calibration_endpoint(method, path, header, alice, bob, make_tenant, browser):
    proposal = approved(alice, bob)
    _, key = make_tenant("Acme")
    value = f"Bearer {key}" if header == "Authorization" else key
    response = call(browser(None, **{header: value}), method, path, proposal)
    assert response.status_code == 403, (response.status_code, response.content)
    assert "API keys act for a tenant" in response.json()["error"]
    nothing_changed(proposal)


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_anonymous_callers_are_refused_with_json(method, path, alice, bob, browser):
    proposal = approved(alice, bob)
    response = call(browser(None), method, path, proposal)
    assert response.status_code in (401, 403)
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"]
    nothing_changed(proposal)


# --- order: apply needs APPROVED, once ------------------------------------------------------

def test_apply_before_approval_is_refused(alice, browser):
    proposal = propose(alice)
    response = browser(alice).post_json(step_url(proposal, "apply"))
    assert response.status_code == 409
    assert response.json()["error"] == "Apply needs an APPROVED proposal; this one is PROPOSED"
    assert state_of(proposal) == "proposed"
    assert latest_version().version == 1


def test_reject_then_apply_is_refused(alice, bob, browser):
    proposal = propose(alice)
    response = browser(bob).post_json(step_url(proposal, "reject"), {"comment": "Not enough evidence"})
    assert response.status_code == 200 and response.json()["status"] == "REJECTED"
    response = browser(alice).post_json(step_url(proposal, "apply"))
    assert response.status_code == 409
    assert response.json()["error"] == "Apply needs an APPROVED proposal; this one is REJECTED"
    assert latest_version().version == 1
    assert events_of(proposal) == ["start", "reject"]
    assert_chains_valid()


def test_approve_twice_is_refused(alice, bob, make_user_risk_lead, browser):
    proposal = propose(alice)
    assert browser(bob).post_json(step_url(proposal, "approve"), {"comment": "yes"}).status_code == 200
    for approver in (bob, make_user_risk_lead("dave")):
        response = browser(approver).post_json(step_url(proposal, "approve"), {"comment": "yes again"})
        assert response.status_code == 409
        assert response.json()["error"] == "Cannot approve a calibration workflow in state 'approved'"
    assert events_of(proposal) == ["start", "approve"]
    assert services.get_proposal(proposal.proposal_id).workflow.state_data["approver_id"] == "bob"


def test_an_approved_proposal_can_still_be_rejected_but_not_after_apply(alice, bob, browser):
    first = approved(alice, bob)
    response = browser(bob).post_json(step_url(first, "reject"), {"comment": "Changed my mind"})
    assert response.status_code == 200 and response.json()["status"] == "REJECTED"

    second = approved(alice, bob, "complexity_floor", 0.6)
    assert browser(alice).post_json(step_url(second, "apply")).status_code == 200
    response = browser(bob).post_json(step_url(second, "reject"), {"comment": "Too late"})
    assert response.status_code == 409
    assert state_of(second) == "applied"


def test_apply_creates_one_version_and_twice_is_refused(alice, bob, browser):
    proposal = approved(alice, bob)
    response = browser(alice).post_json(step_url(proposal, "apply"))
    assert response.status_code == 200, response.content
    assert (response.json()["status"], response.json()["applied_version"]) == ("APPLIED", 2)
    version = latest_version()
    assert (version.version, version.parent.version, version.source, version.source_ref, version.author) == (
        2, 1, "calibration", str(proposal.proposal_id), "alice")
    assert version.parameters == {**ConfigurationVersion.objects.get(version=1).parameters, "novelty_threshold": 0.9}
    again = browser(alice).post_json(step_url(proposal, "apply"))
    assert again.status_code == 409
    assert again.json()["error"] == "Apply needs an APPROVED proposal; this one is APPLIED"
    assert ConfigurationVersion.objects.count() == 2
    assert events_of(proposal) == ["start", "approve", "apply"]
    assert active_config()[1].novelty_threshold == 0.9
    assert_chains_valid()


@pytest.mark.parametrize("proposal_id", ["0d9f3a8e-0000-4000-8000-000000000000", "not-a-uuid"])
@pytest.mark.parametrize(("method", "suffix"), [("GET", ""), ("POST", "/approve"), ("POST", "/reject"),
                                                ("POST", "/apply"), ("GET", "/preview")])
def test_an_unknown_or_malformed_proposal_id_is_404(proposal_id, method, suffix, alice, browser):
    path = f"/api/calibration/proposals/{proposal_id}{suffix}"
    client = browser(alice)
    response = client.get(path) if method == "GET" else client.post_json(path, {"comment": "x"})
    assert response.status_code == 404, (response.status_code, response.content[:200])
    assert response.json()["error"] == f"No calibration proposal {proposal_id}"


# --- STALE ----------------------------------------------------------------------------------

@pytest.mark.parametrize("b_state", ["proposed", "approved"])
def test_applying_one_proposal_makes_the_others_for_the_same_parameter_stale(b_state, alice, bob, browser):
    a = approved(alice, bob, "novelty_threshold", 0.9)
    b = propose(bob, "novelty_threshold", 0.85)
    if b_state == "approved":
        services.approve(b.proposal_id, actor=actor_for(alice), comment="Also fine")
    other = propose(bob, "complexity_floor", 0.6)  # another parameter: unaffected

    services.apply(a.proposal_id, actor=actor_for(alice))

    assert state_of(b) == "stale"
    stale = WorkflowTransition.objects.filter(workflow__calibration_proposal__pk=b.pk).order_by("-seq").first()
    assert (stale.from_state, stale.to_state, stale.payload["event"], stale.payload["active_value"]) == (
        b_state, "stale", "mark_stale", 0.9)
    assert "novelty_threshold is now 0.9" in stale.reason
    assert state_of(other) == "proposed"
    assert browser(alice).get(f"/api/calibration/proposals/{b.proposal_id}").json()["status"] == "STALE"

    for step, who, body in (("approve", alice, {"comment": "Approving anyway"}), ("apply", bob, None)):
        response = browser(who).post_json(step_url(b, step), body)
        assert response.status_code == 409, (step, response.content)
        assert response.json()["error"].startswith("STALE"), (step, response.json()["error"])
        with pytest.raises(CalibrationError) as refused:
            if step == "approve":
                services.approve(b.proposal_id, actor=actor_for(alice), comment="Approving anyway")
            else:
                services.apply(b.proposal_id, actor=actor_for(bob))
        assert refused.value.message.startswith("STALE"), refused.value.message

    assert state_of(b) == "stale"
    assert latest_version().version == 2
    assert latest_version().parameters["novelty_threshold"] == 0.9
    assert_chains_valid()


def test_a_proposal_of_another_parameter_applies_on_top_of_the_new_version(alice, bob):
    a = approved(alice, bob, "novelty_threshold", 0.9)
    c = approved(bob, alice, "tau_warning", 0.35)
    services.apply(a.proposal_id, actor=actor_for(alice))
    created = services.apply(c.proposal_id, actor=actor_for(bob))
    assert (created.version, created.parent.version) == (3, 2)
    assert (created.parameters["novelty_threshold"], created.parameters["tau_warning"]) == (0.9, 0.35)
    assert_chains_valid()


# --- the seed's example --------------------------------------------------------------------

@pytest.fixture
def make_user_risk_lead(seeded):
    return lambda name: make_user(name, risk_lead=True)


def test_the_seeds_calibrator_example(seeded, make_user_risk_lead):
    make_user("calibrator-1")
    make_user_risk_lead("risk-lead")
    monitor = DriftMonitor([0.1 * i for i in range(40)])
    posterior = BayesianPosterior(0.0, 1.0, 0.5)

    calibrator = Calibrator(actor_id="calibrator-1", drift_monitor=monitor, bayesian_posterior=posterior)
    proposal = calibrator.propose_calibration(parameter="tau_warning", new_value=0.35,
                                              justification="Sustained drift above current threshold")
    assert (proposal.status, proposal.current_value, proposal.proposed_by) == ("PROPOSED", 0.3, "calibrator-1")
    approval = calibrator.approve(proposal.proposal_id, approver_id="risk-lead")
    assert approval.status == "APPROVED"
    version = calibrator.apply_calibration(proposal.proposal_id)

    assert version.version == 2 and latest_version() == version
    assert version.parameters["tau_warning"] == 0.35
    number, config = active_config()
    assert (number, config.tau_warning, config.tau_critical) == (2, 0.35, 0.5)
    assert calibrator.get(proposal.proposal_id).status == "APPLIED"
    assert (version.author, version.source_ref) == ("calibrator-1", proposal.proposal_id)
    transitions = list(WorkflowTransition.objects.filter(
        workflow__calibration_proposal__proposal_id=proposal.proposal_id).order_by("seq"))
    assert [(t.payload["event"], t.triggered_by, t.to_state) for t in transitions] == [
        ("start", "calibrator-1", "proposed"), ("approve", "risk-lead", "approved"),
        ("apply", "calibrator-1", "applied")]
    assert transitions[0].reason == "Sustained drift above current threshold"
    assert transitions[2].payload["applied_version"] == 2
    assert_chains_valid()


def test_the_calibrator_refuses_unknown_users(seeded):
    make_user("calibrator-1")
    calibrator = Calibrator(actor_id="calibrator-1")
    proposal = calibrator.propose_calibration("tau_warning", 0.35, "Sustained drift above current threshold")
    with pytest.raises(CalibrationError) as refused:
        calibrator.approve(proposal.proposal_id, approver_id="nobody-by-that-name")
    assert "nobody-by-that-name" in refused.value.message
    with pytest.raises(CalibrationError) as refused:
        Calibrator(actor_id="ghost").propose_calibration("tau_warning", 0.35, "x")
    assert "ghost" in refused.value.message


def test_the_drift_monitor_system_actor_can_propose_but_not_approve(seeded, make_user_risk_lead):
    from django.contrib.auth import get_user_model

    get_user_model().objects.get_or_create(username="drift-monitor")
    proposal = Calibrator(actor_id="drift-monitor").propose_calibration(
        "tau_warning", 0.4, "KL above tau_warning for 3 consecutive days")
    make_user_risk_lead("risk-lead")
    with pytest.raises(CalibrationError) as refused:
        Calibrator(actor_id="drift-monitor").approve(proposal.proposal_id, approver_id="drift-monitor")
    assert refused.value.code == "forbidden"
    assert Calibrator(actor_id="x").approve(proposal.proposal_id, approver_id="risk-lead").status == "APPROVED"


# --- audit chains ----------------------------------------------------------------------------

def test_every_calibration_workflow_chain_verifies_after_its_steps(alice, bob, carol):
    applied = approved(alice, bob, "novelty_threshold", 0.9)
    stale = propose(bob, "novelty_threshold", 0.85)
    rejected = propose(alice, "tau_warning", 0.35)
    services.reject(rejected.proposal_id, actor=actor_for(bob), comment="No drift evidence")
    refused = propose(alice, "complexity_floor", 0.6)
    for attempt in (lambda: services.approve(refused.proposal_id, actor=actor_for(alice), comment="self"),
                    lambda: services.approve(refused.proposal_id, actor=actor_for(carol), comment="no role"),
                    lambda: services.apply(refused.proposal_id, actor=actor_for(alice))):
        with pytest.raises(CalibrationError):
            attempt()
    services.apply(applied.proposal_id, actor=actor_for(alice))

    expected = {applied: ["start", "approve", "apply"], stale: ["start", "mark_stale"],
                rejected: ["start", "reject"], refused: ["start"]}
    engine = DurableWorkflowEngine()
    for proposal, events in expected.items():
        assert events_of(proposal) == events
        workflow_id = services.get_proposal(proposal.proposal_id).workflow.workflow_id
        valid, message = engine.verify_audit_chain(workflow_id)
        assert valid, message
        assert message == f"chain valid: {len(events)} transitions, {len(events)} checkpoints"


# --- telemetry ---------------------------------------------------------------------------------

def test_every_step_is_emitted_as_a_telemetry_event_and_refusals_are_not(alice, bob, carol):
    from governance.models import TelemetryEvent

    def events():
        return [(e.name, e.actor) for e in TelemetryEvent.objects.filter(name__startswith="calibration.")
                .order_by("id")]

    applied = propose(alice, "novelty_threshold", 0.9)
    sibling = propose(bob, "novelty_threshold", 0.85)
    rejected = propose(alice, "tau_warning", 0.35)
    for refused in (lambda: services.approve(applied.proposal_id, actor=actor_for(alice), comment="self"),
                    lambda: services.approve(applied.proposal_id, actor=actor_for(carol), comment="no role"),
                    lambda: services.apply(applied.proposal_id, actor=actor_for(alice))):
        with pytest.raises(CalibrationError):
            refused()
    services.approve(applied.proposal_id, actor=actor_for(bob), comment="ok")
    services.reject(rejected.proposal_id, actor=actor_for(bob), comment="no")
    services.apply(applied.proposal_id, actor=actor_for(alice))

    assert events() == [
        ("calibration.proposed", "alice"), ("calibration.proposed", "bob"), ("calibration.proposed", "alice"),
        ("calibration.approved", "bob"), ("calibration.rejected", "bob"),
        ("calibration.applied", "alice"), ("calibration.stale", "aegis-calibration"),
    ]
    proposed = TelemetryEvent.objects.filter(name="calibration.proposed", subject=str(applied.proposal_id)).get()
    assert (proposed.data["parameter"], proposed.data["from"], proposed.data["to"]) == ("novelty_threshold", 0.8, 0.9)
    assert TelemetryEvent.objects.filter(name="calibration.applied", subject=str(applied.proposal_id)).exists()
    assert state_of(sibling) == "stale"


# --- companion changes (the tau pair in one step) ------------------------------------------------

def test_a_tau_pair_moves_together_and_stales_proposals_of_either_tau(alice, bob):
    pair = services.propose("tau_warning", 0.6, "Both thresholds sit below the observed KL", actor=actor_for(alice),
                            companions={"tau_critical": 0.8})
    assert pair.companion_changes == {"tau_critical": {"from": 0.5, "to": 0.8}}
    other = propose(bob, "tau_critical", 0.55)
    services.approve(pair.proposal_id, actor=actor_for(bob), comment="ok")
    created = services.apply(pair.proposal_id, actor=actor_for(alice))
    assert (created.parameters["tau_warning"], created.parameters["tau_critical"]) == (0.6, 0.8)
    assert state_of(other) == "stale"
    assert_chains_valid()


@pytest.mark.parametrize(("companions", "fragment"), [
    ({"kl_window_days": 60}, "'kl_window_days' is not calibratable"),
    ({"tau_critical": 0.55}, "must be < tau_critical"),
    ({"tau_critical": "0.9"}, "tau_critical: the new value must be a number"),
    ({"tau_warning": 0.4}, "tau_warning is given twice"),
])
def test_companions_are_validated_like_the_parameter(companions, fragment, alice):
    with pytest.raises(CalibrationError) as refused:
        services.propose("tau_warning", 0.6, JUSTIFICATION, actor=actor_for(alice), companions=companions)
    assert fragment in refused.value.message
    assert CalibrationProposal.objects.count() == 0
