"""REST API under /api/workflows: list with filters, detail with transitions, events,
verification, creating proposals and consensus votes — as anonymous, a signed-in user
without a role, a risk lead, and API-key tenants (who see only their own workflows)."""

from __future__ import annotations

import json
from datetime import timedelta, timezone

import pytest
from django.db import connection

from workflows import services
from workflows.persistence.models import WorkflowInstance, WorkflowTransition
from wf_support import SecureClient as Client
from wf_support import (db_value, ESCALATE, HALT, HALT_COMPLEXITY, PAUSE, PROCEED, RISK, consensus, db_counts,
                        drop_append_only_triggers, reload, snapshot, submit, utcnow)

pytestmark = pytest.mark.django_db

ANON, USER, RISK_LEAD = "anonymous", "user", "risk_lead"
PRINCIPALS = [ANON, USER, RISK_LEAD]


@pytest.fixture
def as_principal(make_user):
    from workflows.roles import Role

    def make(kind: str) -> Client:
        client = Client()
        if kind == USER:
            client.force_login(make_user("nina"))
        elif kind == RISK_LEAD:
            client.force_login(make_user("rita", Role.RISK_LEAD))
        return client
    return make


def key_client(plaintext: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {plaintext}")


def post(client, url, body=None):
    return client.post(url, data=json.dumps({} if body is None else body), content_type="application/json")


def url(workflow=None, *rest):
    base = "/api/workflows"
    if workflow is None:
        return base
    return "/".join([base, str(getattr(workflow, "workflow_id", workflow)), *rest])


def assert_unauthenticated(response):
    assert response.status_code in (401, 403)
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"] and body["code"] and "request_id" in body


def assert_error(response, status, code, text=""):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code and text in body["error"], body
    return body


# --- the three principals --------------------------------------------------------------------

@pytest.mark.parametrize("principal", PRINCIPALS)
def test_list(as_principal, principal):
    submit(PAUSE), submit(PROCEED), consensus(["ann"])
    response = as_principal(principal).get(url())
    if principal == ANON:
        return assert_unauthenticated(response)
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3 == len(body["workflows"])
    assert {w["workflow_type"] for w in body["workflows"]} == {"proposal", "consensus"}
    assert set(body["workflows"][0]) == {"workflow_id", "workflow_type", "current_state", "status", "version",
                                         "created_at", "updated_at"}


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_detail_with_transitions(as_principal, principal):
    proposal = submit(ESCALATE)
    response = as_principal(principal).get(url(proposal))
    if principal == ANON:
        return assert_unauthenticated(response)
    assert response.status_code == 200
    body = response.json()
    assert (body["workflow_id"], body["current_state"], body["status"], body["version"]) == (
        str(proposal.workflow_id), "in_review", "pending", 2)
    assert [(t["seq"], t["from_state"], t["to_state"]) for t in body["transitions"]] == [
        (1, "", "submitted"), (2, "submitted", "in_review")]
    assert body["transitions"][1]["prev_hash"] == body["transitions"][0]["hash"]
    assert body["transitions"][0]["prev_hash"] == "0" * 64
    assert body["state_data"]["decision"]["status"] == "escalate"
    offered = [e["event"] for e in body["allowed_events"]]
    assert offered == ([] if principal == USER else ["approve", "reject", "request_override"])


@pytest.mark.parametrize("principal", PRINCIPALS)
@pytest.mark.parametrize("event, target", [("approve", "approved"), ("reject", "rejected")])
def test_fire_role_gated_event(as_principal, principal, event, target):
    proposal = submit(PAUSE)
    before = snapshot(proposal)
    response = post(as_principal(principal), url(proposal, "events", event), {"comment": "Reviewed the plan"})
    if principal == ANON:
        assert_unauthenticated(response)
    elif principal == USER:
        assert_error(response, 403, "forbidden", f"{event.capitalize()} needs the role risk_lead")
    else:
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["current_state"] == target and body["version"] == 3
        assert body["transitions"][-1]["triggered_by"] == "rita"
        assert body["transitions"][-1]["reason"] == "Reviewed the plan"
        assert body["allowed_events"] == []
        return
    assert snapshot(proposal) == before


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_verify(as_principal, principal):
    proposal = submit(HALT)
    response = post(as_principal(principal), url(proposal, "verify"))
    if principal == ANON:
        return assert_unauthenticated(response)
    assert response.status_code == 200
    assert response.json() == {"workflow_id": str(proposal.workflow_id), "is_valid": True,
                               "message": "chain valid: 2 transitions, 2 checkpoints", "transitions": 2,
                               "checkpoints": 2, "broken_seq": None}


def test_verify_reports_a_tampered_chain(as_principal):
    proposal = reload(submit(HALT))
    drop_append_only_triggers()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE workflows_workflowtransition SET reason = %s WHERE workflow_id = %s AND seq = 2",
                       [db_value(WorkflowTransition, "reason", "x"), proposal.pk])
    body = post(as_principal(USER), url(proposal, "verify")).json()
    assert body["is_valid"] is False and body["broken_seq"] == 2 and body["message"].startswith("seq 2: hash mismatch")


@pytest.mark.parametrize("principal", PRINCIPALS)
@pytest.mark.parametrize("inputs, state", [(PROCEED, "approved"), (HALT, "rejected"), (PAUSE, "in_review")])
def test_create_proposal(as_principal, principal, inputs, state):
    counts = db_counts()
    response = post(as_principal(principal), url(None) + "/proposals", inputs)
    if principal == ANON:
        assert_unauthenticated(response)
        assert db_counts() == counts
        return
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["workflow_type"] == "proposal" and body["current_state"] == state and body["version"] == 2
    row = WorkflowInstance.objects.get(workflow_id=body["workflow_id"])
    assert row.customer is None
    assert body["transitions"][0]["triggered_by"] == ("nina" if principal == USER else "rita")


def test_create_proposal_with_invalid_input(as_principal):
    response = post(as_principal(USER), url(None) + "/proposals", {"novelty_score": 2})
    assert response.status_code in (400, 422)
    assert "proposal_summary" in response.json()["error"]
    assert not WorkflowInstance.objects.exists()


def consensus_body(**changes):
    body = {"subject": "Ship v2", "reviewers": ["nina", "rita", "sam"], "quorum": 2, "approval_threshold": 0.5,
            "deadline": (utcnow() + timedelta(days=1)).isoformat()}
    body.update(changes)
    return body


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_create_consensus(as_principal, principal):
    counts = db_counts()
    deadline = (utcnow() + timedelta(days=1)).astimezone(timezone(timedelta(hours=2)))
    response = post(as_principal(principal), url(None) + "/consensus", consensus_body(deadline=deadline.isoformat()))
    if principal == ANON:
        assert_unauthenticated(response)
        assert db_counts() == counts
        return
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["workflow_type"], body["current_state"], body["status"]) == ("consensus", "voting", "active")
    assert body["state_data"]["reviewers"] == ["nina", "rita", "sam"]
    assert body["state_data"]["deadline"].endswith("Z")  # normalised to UTC
    offered = [e["event"] for e in body["allowed_events"]]
    assert offered == ["vote"]  # nina and rita are both named reviewers
    assert body["allowed_events"][0]["params"] == [{"name": "vote", "choices": ["approve", "reject"],
                                                    "required": True}]


@pytest.mark.parametrize("changes, status, code, text", [
    ({"quorum": 4}, 400, "invalid", "quorum must be between 1 and"),
    ({"deadline": "2020-01-01T00:00:00Z"}, 400, "invalid", "deadline must be in the future"),
    ({"deadline": "2030-01-01T00:00:00"}, 400, "invalid_request", "has no UTC offset"),
    ({"deadline": 12}, 400, "invalid_request", "deadline"),
    ({"reviewers": "nina"}, 400, "invalid_request", "reviewers must be a list"),
    ({"quorum": True}, 400, "invalid_request", "quorum must be an integer"),
    ({"approval_threshold": "half"}, 400, "invalid_request", "approval_threshold"),
    ({"colour": "blue"}, 422, "unknown_field", "colour"),
], ids=["quorum", "past-deadline", "naive-deadline", "int-deadline", "reviewers", "bool-quorum", "threshold",
        "unknown-field"])
def test_create_consensus_validation(as_principal, changes, status, code, text):
    response = post(as_principal(USER), url(None) + "/consensus", consensus_body(**changes))
    assert_error(response, status, code, text)
    assert not WorkflowInstance.objects.exists()


def test_create_consensus_missing_field(as_principal):
    body = consensus_body()
    del body["deadline"]
    assert_error(post(as_principal(USER), url(None) + "/consensus", body), 400, "invalid_request", "deadline")


# --- filters and errors ----------------------------------------------------------------------

@pytest.fixture
def mixed():
    return {"proceed": submit(PROCEED), "halt": submit(HALT), "pause": submit(PAUSE), "escalate": submit(ESCALATE),
            "vote": consensus(["ann", "ben"])}


@pytest.mark.parametrize("query, expected", [
    ("", {"proceed", "halt", "pause", "escalate", "vote"}),
    ("?status=pending", {"pause", "escalate"}),
    ("?status=completed", {"proceed"}),
    ("?status=rejected", {"halt"}),
    ("?status=active", {"vote"}),
    ("?status=expired", set()),
    ("?type=proposal", {"proceed", "halt", "pause", "escalate"}),
    ("?type=consensus", {"vote"}),
    ("?type=override", set()),
    ("?type=proposal&status=pending", {"pause", "escalate"}),
    ("?type=consensus&status=pending", set()),
])
def test_list_filters(as_principal, mixed, query, expected):
    response = as_principal(USER).get(url() + query)
    assert response.status_code == 200
    names = {name for name, w in mixed.items()}
    by_id = {str(w.workflow_id): name for name, w in mixed.items()}
    got = {by_id[w["workflow_id"]] for w in response.json()["workflows"]}
    assert got == expected and got <= names


@pytest.mark.parametrize("query, text", [("?status=open", "status must be one of"),
                                         ("?type=ballot", "type must be one of"),
                                         ("?limit=0", "limit"), ("?limit=abc", "limit")])
def test_list_filter_errors(as_principal, query, text):
    assert_error(as_principal(USER).get(url() + query), 400, "invalid_request", text)


def test_list_limit(as_principal, mixed):
    body = as_principal(USER).get(url() + "?limit=2").json()
    assert body["count"] == 2


@pytest.mark.parametrize("event, body, status, code, text", [
    ("approve", {}, 400, "invalid", "Approve needs a comment"),
    ("approve", {"comment": 5}, 400, "invalid_request", "comment must be a string"),
    ("approve", {"comment": "x", "extra": 1}, 422, "unknown_field", "extra"),
    ("approve", {"comment": "x", "params": {"decision": {}}}, 400, "invalid", "takes no parameter"),
    ("vote", {"comment": "x"}, 400, "invalid", "no event 'vote'"),
    ("evaluate", {"comment": "x"}, 409, "conflict", "Cannot evaluate"),
    ("override_granted", {"comment": "x"}, 409, "conflict", "Cannot override granted"),
])
def test_event_errors(as_principal, event, body, status, code, text):
    proposal = submit(PAUSE)
    before = snapshot(proposal)
    assert_error(post(as_principal(RISK_LEAD), url(proposal, "events", event), body), status, code, text)
    assert snapshot(proposal) == before


def test_event_conflict_after_decision(as_principal):
    proposal = submit(PAUSE)
    client = as_principal(RISK_LEAD)
    assert post(client, url(proposal, "events", "approve"), {"comment": "ok"}).status_code == 200
    assert_error(post(client, url(proposal, "events", "reject"), {"comment": "no"}), 409, "conflict",
                 "Cannot reject a proposal workflow in state 'approved'")


@pytest.mark.parametrize("workflow_id", ["00000000-0000-0000-0000-000000000000", "not-a-uuid"])
@pytest.mark.parametrize("method, tail", [("get", ()), ("post", ("verify",)), ("post", ("events", "approve"))])
def test_unknown_workflow_is_404(as_principal, workflow_id, method, tail):
    client = as_principal(RISK_LEAD)
    target = url(workflow_id, *tail)
    response = client.get(target) if method == "get" else post(client, target, {"comment": "x"})
    assert_error(response, 404, "not_found", workflow_id)


def test_request_override_through_the_api(as_principal):
    proposal = submit(HALT)
    response = post(as_principal(RISK_LEAD), url(proposal, "events", "request_override"),
                    {"comment": "The launch depends on it"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["current_state"] == "override_requested"
    override_id = body["state_data"]["override_workflow_id"]
    override = as_principal(USER).get(url(override_id)).json()
    assert (override["workflow_type"], override["current_state"]) == ("override", "pending")
    assert override["state_data"]["justification"] == "The launch depends on it"


@pytest.mark.parametrize("principal, inputs, status, text", [
    (RISK_LEAD, HALT_COMPLEXITY, 403, "complexity failure is refused"),
    (USER, HALT, 403, "needs the role"),
    (RISK_LEAD, PROCEED, 409, "Cannot request override"),
])
def test_refused_override_request_through_the_api_creates_nothing(as_principal, principal, inputs, status, text):
    proposal = submit(inputs)
    counts = db_counts()
    response = post(as_principal(principal), url(proposal, "events", "request_override"), {"comment": "please"})
    assert response.status_code == status and text in response.json()["error"]
    assert db_counts() == counts


def test_consensus_vote_through_the_api(as_principal):
    vote = consensus(["nina", "sam"], quorum=1)
    nina = as_principal(USER)
    response = post(nina, url(vote, "events", "vote"), {"params": {"vote": "approve"}})
    assert response.status_code == 200 and response.json()["state_data"]["votes"] == {"nina": "approve"}
    assert_error(post(nina, url(vote, "events", "vote"), {"params": {"vote": "approve"}}), 403, "forbidden",
                 "already voted")
    assert_error(post(as_principal(RISK_LEAD), url(vote, "events", "vote"), {"params": {"vote": "reject"}}), 403,
                 "forbidden", "Only the named reviewers")


def test_expired_override_is_expired_when_read_through_the_api(as_principal, settings):
    settings.AEGIS_OVERRIDE_EXPIRY_HOURS = 1
    proposal = submit(HALT, now=utcnow() - timedelta(hours=2))
    override = services.request_override(proposal.workflow_id, actor=RISK, justification="x",
                                         now=utcnow() - timedelta(hours=2))
    body = as_principal(RISK_LEAD).get(url(override)).json()
    assert (body["current_state"], body["status"], body["allowed_events"]) == ("expired", "expired", [])
    assert reload(proposal).current_state == "rejected"


# --- API-key tenants -------------------------------------------------------------------------

@pytest.fixture
def tenants(make_tenant):
    acme, acme_key = make_tenant("Acme")
    globex, globex_key = make_tenant("Globex")
    return {"acme": (acme, key_client(acme_key)), "globex": (globex, key_client(globex_key))}


def test_api_key_callers_see_only_their_tenants_workflows(tenants, as_principal):
    acme, acme_client = tenants["acme"]
    globex, globex_client = tenants["globex"]
    created = post(acme_client, url(None) + "/proposals", PAUSE)
    assert created.status_code == 201, created.content
    acme_proposal = created.json()["workflow_id"]
    assert WorkflowInstance.objects.get(workflow_id=acme_proposal).customer == acme
    acme_vote = post(acme_client, url(None) + "/consensus", consensus_body()).json()["workflow_id"]
    globex_proposal = submit(HALT, customer=globex)
    untenanted = submit(PROCEED)

    listed = {w["workflow_id"] for w in acme_client.get(url()).json()["workflows"]}
    assert listed == {acme_proposal, acme_vote}
    assert {w["workflow_id"] for w in globex_client.get(url()).json()["workflows"]} == {
        str(globex_proposal.workflow_id)}
    assert acme_client.get(url() + "?type=consensus").json()["workflows"][0]["workflow_id"] == acme_vote

    # another tenant's (or no tenant's) workflow does not exist for them
    for other in (acme_proposal, str(untenanted.workflow_id)):
        assert_error(globex_client.get(url(other)), 404, "not_found")
        assert_error(post(globex_client, url(other, "verify")), 404, "not_found")
        assert_error(post(globex_client, url(other, "events", "approve"), {"comment": "x"}), 404, "not_found")
    assert acme_client.get(url(acme_proposal)).status_code == 200
    assert post(acme_client, url(acme_proposal, "verify")).json()["is_valid"] is True

    # a person sees every tenant's workflows
    everything = {w["workflow_id"] for w in as_principal(USER).get(url()).json()["workflows"]}
    assert everything == {acme_proposal, acme_vote, str(globex_proposal.workflow_id), str(untenanted.workflow_id)}


def test_api_key_callers_hold_no_reviewer_role_but_may_request_the_override(tenants):
    acme, acme_client = tenants["acme"]
    proposal = submit(ESCALATE, customer=acme)
    before = snapshot(proposal)
    detail = acme_client.get(url(proposal)).json()
    assert [event["event"] for event in detail["allowed_events"]] == ["request_override"]
    for event in ("approve", "reject"):
        assert_error(post(acme_client, url(proposal, "events", event), {"comment": "x"}), 403, "forbidden",
                     "needs the role risk_lead")
    assert snapshot(proposal) == before
    response = post(acme_client, url(proposal, "events", "request_override"), {"comment": "Launch needs it"})
    assert response.status_code == 200 and response.json()["current_state"] == "override_requested"


@pytest.mark.parametrize("header", ["Bearer not-a-key", "Basic abc"])
def test_bad_api_key_is_401(header):
    response = Client(HTTP_AUTHORIZATION=header).get(url())
    assert_error(response, 401, "invalid_api_key")
