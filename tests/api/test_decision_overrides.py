"""The governance loop over the API: a stored decision's review workflow, the override it
offers (POST /api/decisions/{id}/override), reviewers acting on it, and what the caller
then reads in `effective_status`, `review_state` and `override`."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from api_support import ApiClient, assert_json_error
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from governance.decisions import JUSTIFICATION_MAX_LENGTH
from governance.models import Decision, UsageCounter
from workflows import services as workflow_services
from workflows.machines import override_binding_hash
from workflows.persistence.models import WorkflowInstance
from workflows.roles import ROLE_GROUPS, Role
from workflows.serialization import ensure_utc

PROCEED = {"proposal_summary": "Small change"}
HALT = {"proposal_summary": "Novel router", "novelty_score": 0.9}
COMPLEXITY_HALT = {"proposal_summary": "Tangled", "novelty_score": 0.9, "complexity_score": 0.1}
ESCALATE = {"proposal_summary": "Novel and big", "novelty_score": 0.9, "estimated_impact": "high"}
PAUSE = {"proposal_summary": "Bigger change", "estimated_impact": "high"}
SHADOW_HALT = {**HALT, "shadow_mode": True}
JUSTIFICATION = "The launch depends on it; rollback plan attached"


class SessionClient(Client):
    """A signed-in person over HTTPS (the settings redirect plain HTTP)."""

    def generic(self, *args, secure=True, **kwargs):
        return super().generic(*args, secure=True, **kwargs)

    def post_json(self, path, body):
        return self.generic("POST", path, json.dumps(body), content_type="application/json")


def person(username: str, *roles: Role) -> SessionClient:
    user = get_user_model().objects.create_user(username, password=None, is_staff=True)
    for role in roles:
        user.groups.add(Group.objects.get_or_create(name=ROLE_GROUPS[role])[0])
    client = SessionClient()
    client.force_login(user)
    client.user = user
    return client


def evaluate(api: ApiClient, inputs: dict) -> dict:
    response = api.post("/evaluate", inputs)
    assert response.status_code == 200, response.content
    return response.json()


def override_path(decision_id) -> str:
    return f"/api/decisions/{decision_id}/override"


def request_override(client, decision_id, justification=JUSTIFICATION):
    if isinstance(client, SessionClient):
        return client.post_json(override_path(decision_id), {"justification": justification})
    return client.post(override_path(decision_id), {"justification": justification})


def stored(api: ApiClient, decision_id) -> dict:
    response = api.get(f"/customer/decisions/{decision_id}")
    assert response.status_code == 200, response.content
    return response.json()["decision"]


# --- what /evaluate opens ---------------------------------------------------------------------

@pytest.mark.parametrize("inputs, status, review_state", [
    (PROCEED, "proceed", None), (HALT, "halt", "rejected"), (COMPLEXITY_HALT, "halt", "rejected"),
    (ESCALATE, "escalate", "in_review"), (PAUSE, "pause", "in_review"), (SHADOW_HALT, "halt", None),
    ({**PAUSE, "shadow_mode": True}, "pause", None),
], ids=["proceed", "halt", "complexity-halt", "escalate", "pause", "shadow-halt", "shadow-pause"])
def test_evaluate_opens_a_review_exactly_when_a_person_must_act(api, tenant, inputs, status, review_state):
    body = evaluate(api, inputs)
    decision = Decision.objects.get(decision_id=body["decision_id"])
    assert body["status"] == decision.status == status
    assert body["review_state"] == review_state and body["effective_status"] == status and body["override"] is None
    if review_state is None:
        assert body["workflow_id"] is None and decision.workflow is None
        assert not WorkflowInstance.objects.exists()
        return
    workflow = WorkflowInstance.objects.get()
    assert body["workflow_id"] == str(workflow.workflow_id) == str(decision.review_workflow_id)
    assert workflow.customer == tenant.customer and workflow.current_state == review_state
    assert workflow.state_data["decision"]["decision_id"] == body["decision_id"]
    assert workflow.state_data["submitted_by"] == f"api-key:{tenant.key.key_id}"
    assert stored(api, body["decision_id"]) == body


def test_shadow_decisions_report_no_override(api):
    body = evaluate(api, SHADOW_HALT)
    assert body["shadow_mode"] is True and body["override_eligible"] is False and body["override_requires"] == []
    assert any("recorded only" in step for step in body["next_steps"])


def test_a_decision_is_stored_once_and_its_engine_answer_never_changes(api, tenant):
    body = evaluate(api, HALT)
    decision = Decision.objects.get()
    engine_answer = dict(decision.response)
    custodians = [person("rita", Role.RISK_LEAD), person("sam", Role.SECURITY_LEAD)]
    override = request_override(api, body["decision_id"]).json()
    for client in custodians:
        response = client.post_json(f"/api/workflows/{override['workflow_id']}/events/approve", {"comment": "ok"})
        assert response.status_code == 200, response.content
    decision.refresh_from_db()
    assert decision.response == engine_answer and decision.status == "halt"
    assert stored(api, body["decision_id"])["status"] == "halt"
    with pytest.raises(ValueError):
        decision.save()


def test_the_proposal_workflow_path_stores_a_decision_of_the_tenant(api, tenant):
    response = api.post("/api/workflows/proposals", HALT)
    assert response.status_code == 201, response.content
    workflow = response.json()
    decision_id = workflow["state_data"]["decision"]["decision_id"]
    decision = stored(api, decision_id)
    assert decision["workflow_id"] == workflow["workflow_id"] and decision["review_state"] == "rejected"
    assert Decision.objects.get(decision_id=decision_id).customer == tenant.customer
    assert UsageCounter.objects.get(customer=tenant.customer, channel="api").count == 1
    assert UsageCounter.objects.get(customer=tenant.customer, channel=UsageCounter.ALL_CHANNELS).count == 1


def test_the_proposal_workflow_path_refuses_shadow_proposals(api):
    body = assert_json_error(api.post("/api/workflows/proposals", SHADOW_HALT), 400)
    assert "shadow_mode" in body["error"]
    assert not Decision.objects.exists() and not WorkflowInstance.objects.exists()


def test_a_person_may_submit_a_proposal_without_a_tenant(db):
    rita = person("rita", Role.RISK_LEAD)
    response = rita.post_json("/api/workflows/proposals", PAUSE)
    assert response.status_code == 201, response.content
    decision = Decision.objects.get()
    assert decision.customer is None and str(decision.review_workflow_id) == response.json()["workflow_id"]


# --- who may request the override ---------------------------------------------------------

def _caller(kind: str, tenant, other_tenant):
    return {
        "anonymous": lambda: ApiClient(),
        "tenant-key": lambda: ApiClient(tenant.plaintext),
        "other-tenant-key": lambda: ApiClient(other_tenant.plaintext),
        "staff-without-role": lambda: person("nina"),
        "risk-lead": lambda: person("rita", Role.RISK_LEAD),
        "security-lead": lambda: person("sam", Role.SECURITY_LEAD),
    }[kind]()


@pytest.mark.parametrize("kind, status", [
    ("anonymous", 401), ("tenant-key", 201), ("other-tenant-key", 404), ("staff-without-role", 403),
    ("risk-lead", 201), ("security-lead", 201)])
def test_override_request_permissions(api, tenant, other_tenant, kind, status):
    decision_id = evaluate(api, HALT)["decision_id"]
    response = request_override(_caller(kind, tenant, other_tenant), decision_id)
    if status != 201:
        assert_json_error(response, status)
        assert not WorkflowInstance.objects.filter(workflow_type="override").exists()
        assert stored(api, decision_id)["override"] is None
        return
    assert response.status_code == 201, response.content
    body = response.json()
    override = WorkflowInstance.objects.get(workflow_type="override")
    assert body == {"decision_id": decision_id, "workflow_id": str(override.workflow_id), "status": "pending",
                    "expires_at": override.state_data["expires_at"],
                    "binding_hash": override_binding_hash(decision_id, JUSTIFICATION, ["novelty"])}
    assert ensure_utc(body["expires_at"]) - override.created_at == timedelta(hours=24)
    expected_actor = f"api-key:{tenant.key.key_id}" if kind == "tenant-key" else {
        "risk-lead": "rita", "security-lead": "sam"}[kind]
    assert override.state_data["requested_by"] == expected_actor
    seen = stored(api, decision_id)
    assert seen["review_state"] == "override_requested" and seen["effective_status"] == "halt"
    assert seen["override"]["workflow_id"] == body["workflow_id"] and seen["override"]["status"] == "pending"


def test_another_tenants_decision_answers_like_a_missing_one(api, other_tenant):
    decision_id = evaluate(api, HALT)["decision_id"]
    foreign = ApiClient(other_tenant.plaintext)
    missing_id = str(uuid.uuid4())
    foreign_body = assert_json_error(request_override(foreign, decision_id), 404)
    missing_body = assert_json_error(request_override(foreign, missing_id), 404)
    assert foreign_body["error"].replace(decision_id, "X") == missing_body["error"].replace(missing_id, "X")
    assert assert_json_error(foreign.get(f"/customer/decisions/{decision_id}"), 404)["code"] == "not_found"
    assert assert_json_error(foreign.get(f"/api/decisions/{decision_id}"), 404)["code"] == "not_found"


@pytest.mark.parametrize("inputs, reason", [
    (PROCEED, "proceeded; there is nothing to override"),
    (PAUSE, "not eligible for an override"),
    (SHADOW_HALT, "Shadow decisions are recorded only"),
    (COMPLEXITY_HALT, "complexity failure is refused"),
], ids=["proceed", "pause", "shadow", "complexity"])
def test_an_ineligible_decision_is_a_conflict_with_the_reason(api, inputs, reason):
    decision_id = evaluate(api, inputs)["decision_id"]
    before = WorkflowInstance.objects.count()
    body = assert_json_error(request_override(api, decision_id), 409)
    assert reason in body["error"]
    assert WorkflowInstance.objects.count() == before


def test_a_second_request_is_a_conflict(api):
    decision_id = evaluate(api, ESCALATE)["decision_id"]
    assert request_override(api, decision_id).status_code == 201
    body = assert_json_error(request_override(person("rita", Role.RISK_LEAD), decision_id), 409)
    assert "already requested" in body["error"]
    assert WorkflowInstance.objects.filter(workflow_type="override").count() == 1


@pytest.mark.parametrize("body, status, text", [
    ({"justification": ""}, 400, "justification is required"),
    ({"justification": "   "}, 400, "justification is required"),
    ({}, 400, "justification is required"),
    ({"justification": 42}, 400, "justification is required"),
    ({"justification": "x" * (JUSTIFICATION_MAX_LENGTH + 1)}, 400, f"at most {JUSTIFICATION_MAX_LENGTH}"),
    ({"justification": "ok", "role": "risk_lead"}, 422, "Unknown field(s): role"),
], ids=["empty", "blank", "missing", "not-a-string", "too-long", "unknown-field"])
def test_a_bad_justification_names_the_field(api, body, status, text):
    decision_id = evaluate(api, HALT)["decision_id"]
    error = assert_json_error(api.post(override_path(decision_id), body), status)
    assert text in error["error"]
    assert not WorkflowInstance.objects.filter(workflow_type="override").exists()


def test_a_malformed_id_is_a_404(api):
    assert assert_json_error(request_override(api, "not-a-uuid"), 404)["code"] == "not_found"


# --- what the caller sees after people acted -------------------------------------------------

def _sign(override_id, *clients):
    for client in clients:
        response = client.post_json(f"/api/workflows/{override_id}/events/approve", {"comment": "Reviewed"})
        assert response.status_code == 200, response.content


def test_an_approved_override_makes_the_effective_status_proceed(api):
    decision_id = evaluate(api, HALT)["decision_id"]
    override_id = request_override(api, decision_id).json()["workflow_id"]
    rita, sam = person("rita", Role.RISK_LEAD), person("sam", Role.SECURITY_LEAD)
    _sign(override_id, rita)
    partial = stored(api, decision_id)
    assert partial["override"]["status"] == "partial" and partial["effective_status"] == "halt"
    assert [a["role"] for a in partial["override"]["approvals"]] == ["risk_lead"]
    _sign(override_id, sam)
    seen = stored(api, decision_id)
    assert seen["status"] == "halt" and seen["effective_status"] == "proceed" and seen["review_state"] == "approved"
    assert seen["override"]["status"] == "approved" and seen["override"]["decided_at"] is not None
    assert sorted(a["role"] for a in seen["override"]["approvals"]) == ["risk_lead", "security_lead"]
    assert set(seen["override"]) == {"workflow_id", "status", "requested_at", "expires_at", "decided_at", "approvals"}


def test_a_rejected_override_makes_the_effective_status_halt(api):
    decision_id = evaluate(api, ESCALATE)["decision_id"]
    override_id = request_override(api, decision_id).json()["workflow_id"]
    response = person("sam", Role.SECURITY_LEAD).post_json(f"/api/workflows/{override_id}/events/reject",
                                                            {"comment": "No rollback plan"})
    assert response.status_code == 200, response.content
    seen = stored(api, decision_id)
    assert seen["status"] == "escalate" and seen["effective_status"] == "halt"
    assert seen["override"]["status"] == "rejected"


def test_an_expired_override_makes_the_effective_status_halt(api):
    decision_id = evaluate(api, HALT)["decision_id"]
    override_id = request_override(api, decision_id).json()["workflow_id"]
    later = ensure_utc(WorkflowInstance.objects.get(workflow_id=override_id).state_data["expires_at"])
    assert workflow_services.expire_if_due(override_id, now=later + timedelta(seconds=1))
    seen = stored(api, decision_id)
    assert seen["override"]["status"] == "expired" and seen["effective_status"] == "halt"


@pytest.mark.parametrize("event, effective", [("approve", "proceed"), ("reject", "halt")])
def test_a_risk_lead_reviews_a_paused_decision(api, event, effective):
    decision_id = evaluate(api, PAUSE)["decision_id"]
    rita = person("rita", Role.RISK_LEAD)
    response = rita.post_json(f"/api/decisions/{decision_id}/events/{event}", {"comment": "Checked the plan"})
    assert response.status_code == 200, response.content
    assert response.json()["decision"]["effective_status"] == effective
    seen = stored(api, decision_id)
    assert seen["status"] == "pause" and seen["effective_status"] == effective


@pytest.mark.parametrize("kind, event, status", [
    ("staff-without-role", "approve", 403), ("security-lead", "approve", 403), ("tenant-key", "approve", 403),
    ("other-tenant-key", "approve", 404), ("anonymous", "approve", 401), ("risk-lead", "withdraw", 403)])
def test_who_may_not_review(api, tenant, other_tenant, kind, event, status):
    decision_id = evaluate(api, PAUSE)["decision_id"]
    client = _caller(kind, tenant, other_tenant)
    path, body = f"/api/decisions/{decision_id}/events/{event}", {"comment": "x"}
    response = client.post_json(path, body) if isinstance(client, SessionClient) else client.post(path, body)
    assert_json_error(response, status)
    assert stored(api, decision_id)["review_state"] == "in_review"


def test_a_reviewer_needs_a_comment(api):
    decision_id = evaluate(api, PAUSE)["decision_id"]
    response = person("rita", Role.RISK_LEAD).post_json(f"/api/decisions/{decision_id}/events/approve", {})
    assert "needs a comment" in assert_json_error(response, 400)["error"]


def test_the_person_who_submitted_a_proposal_withdraws_it_and_cannot_review_it(db):
    rita, rob = person("rita", Role.RISK_LEAD), person("rob", Role.RISK_LEAD)
    workflow_id = rita.post_json("/api/workflows/proposals", PAUSE).json()["workflow_id"]
    decision_id = str(Decision.objects.get().decision_id)
    refused = rita.post_json(f"/api/decisions/{decision_id}/events/approve", {"comment": "mine"})
    assert "Four eyes" in assert_json_error(refused, 403)["error"]
    # A rename changes nothing: people are compared by user id.
    rita.user.username = "rita-renamed"
    rita.user.save()
    assert "Four eyes" in assert_json_error(
        rita.post_json(f"/api/decisions/{decision_id}/events/reject", {"comment": "mine"}), 403)["error"]
    assert "Only the one who submitted" in assert_json_error(
        rob.post_json(f"/api/decisions/{decision_id}/events/withdraw", {"comment": "not mine"}), 403)["error"]
    response = rita.post_json(f"/api/decisions/{decision_id}/events/withdraw", {"comment": "Superseded"})
    assert response.status_code == 200, response.content
    assert response.json()["decision"]["effective_status"] == "halt"
    assert WorkflowInstance.objects.get(workflow_id=workflow_id).current_state == "withdrawn"


def test_the_decision_list_carries_the_review_of_each_decision(api):
    proceed, halt = evaluate(api, PROCEED), evaluate(api, HALT)
    request_override(api, halt["decision_id"])
    response = api.get("/customer/decisions")
    listed = {d["decision_id"]: d for d in response.json()["decisions"]}
    assert listed[proceed["decision_id"]]["workflow_id"] is None
    assert listed[halt["decision_id"]]["override"]["status"] == "pending"


def test_a_person_reads_any_stored_decision(api):
    decision_id = evaluate(api, HALT)["decision_id"]
    response = person("nina").get(f"/api/decisions/{decision_id}")
    assert response.status_code == 200 and response.json()["decision"]["review_state"] == "rejected"
