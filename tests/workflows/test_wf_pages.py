"""Reviewer pages under /workflows/: login required, one button per event the user may fire,
POST fires with a success message, refusals say why and change nothing, CSRF enforced."""

from __future__ import annotations

import re

import pytest
from django.db import connection

from workflows import services
from workflows.persistence.models import WorkflowInstance, WorkflowTransition
from workflows.roles import Role
from wf_support import SecureClient as Client
from wf_support import (db_value, ESCALATE, HALT, HALT_COMPLEXITY, PAUSE, PROCEED, RISK, consensus, db_counts,
                        drop_append_only_triggers, reload, snapshot, submit)

pytestmark = pytest.mark.django_db


@pytest.fixture
def users(make_user):
    return {"rita": make_user("rita", Role.RISK_LEAD), "sam": make_user("sam", Role.SECURITY_LEAD),
            "nina": make_user("nina")}


@pytest.fixture
def signed_in(users):
    def make(username: str, **options) -> Client:
        client = Client(**options)
        client.force_login(users[username])
        return client
    return make


def page(workflow):
    return f"/workflows/{workflow.workflow_id}/"


def fire_url(workflow, event):
    return f"/workflows/{workflow.workflow_id}/events/{event}/"


def buttons(response) -> list[str]:
    assert response.status_code == 200
    return re.findall(r'data-event="([a-z_]+)"', response.content.decode())


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


# --- login -----------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/workflows/", "detail", "fire"])
def test_pages_require_login(path):
    proposal = submit(PAUSE)
    target = {"detail": page(proposal), "fire": fire_url(proposal, "approve")}.get(path, path)
    client = Client()
    response = client.post(target, {"comment": "x"}) if path == "fire" else client.get(target)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")
    assert reload(proposal).current_state == "in_review"


def test_unknown_workflow_page_is_404(signed_in):
    assert signed_in("rita").get("/workflows/00000000-0000-0000-0000-000000000000/").status_code == 404


def test_fire_needs_post(signed_in):
    proposal = submit(PAUSE)
    assert signed_in("rita").get(fire_url(proposal, "approve")).status_code == 405
    assert reload(proposal).current_state == "in_review"


# --- what each person is offered -------------------------------------------------------------

def escalated():
    return submit(ESCALATE)


def complexity_halt():
    return submit(HALT_COMPLEXITY)


def override_pending():
    return services.request_override(submit(HALT).workflow_id, actor=RISK, justification="launch")


def override_partial_by_sam():
    """sam (the signed-in user, so the same person the pages see) approved first."""
    from django.contrib.auth import get_user_model

    override = override_pending()
    services.fire_event(override.workflow_id, "approve",
                        actor=services.actor_for(get_user_model().objects.get(username="sam")), comment="ok")
    return override


def vote_naming_nina():
    return consensus(["nina", "sam"])


@pytest.mark.parametrize("make, username, offered", [
    (escalated, "rita", ["approve", "reject", "request_override"]),
    (escalated, "sam", ["request_override"]),
    (escalated, "nina", []),
    (complexity_halt, "rita", []),
    (complexity_halt, "sam", []),
    (override_pending, "rita", ["approve", "reject"]),
    (override_pending, "sam", ["approve", "reject"]),
    (override_pending, "nina", []),
    (override_partial_by_sam, "sam", ["reject"]),  # sam approved already: no second "Approve" for him
    (override_partial_by_sam, "rita", ["approve", "reject"]),
    (vote_naming_nina, "nina", ["vote"]),
    (vote_naming_nina, "sam", ["vote"]),
    (vote_naming_nina, "rita", []),
], ids=lambda v: getattr(v, "__name__", v) if not isinstance(v, list) else "+".join(v) or "nothing")
def test_detail_shows_only_the_buttons_the_user_may_press(signed_in, make, username, offered):
    workflow = make()
    response = signed_in(username).get(page(workflow))
    assert buttons(response) == offered
    html = response.content.decode()
    if not offered:
        assert "There is nothing you can do on this workflow now." in html
    assert f"#{reload(workflow).version} " in html  # the timeline shows every transition
    assert 'id="chain-status">valid<' in html


def test_override_form_carries_the_binding_hash(signed_in):
    override = override_pending()
    html = signed_in("sam").get(page(override)).content.decode()
    binding = reload(override).state_data["binding_hash"]
    assert f'<input type="hidden" name="binding_hash" value="{binding}">' in html


def test_inbox_lists_what_waits_for_each_user(signed_in):
    proposal = escalated()
    vote = vote_naming_nina()
    approved = submit(PROCEED)
    rita = signed_in("rita").get("/workflows/")
    assert rita.status_code == 200
    assert [row.workflow.workflow_id for row in rita.context["waiting"]] == [proposal.workflow_id]
    assert "Approve, Reject, Request override" in rita.content.decode()
    nina = signed_in("nina").get("/workflows/")
    assert [row.workflow.workflow_id for row in nina.context["waiting"]] == [vote.workflow_id]
    listed = {w.workflow_id for w in signed_in("nina").get("/workflows/?status=completed").context["page"]}
    assert listed == {approved.workflow_id}
    listed = {w.workflow_id for w in signed_in("nina").get("/workflows/?type=consensus").context["page"]}
    assert listed == {vote.workflow_id}


def test_detail_shows_a_broken_chain(signed_in):
    proposal = reload(submit(HALT))
    drop_append_only_triggers()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE workflows_workflowtransition SET reason = %s WHERE workflow_id = %s AND seq = 1",
                       [db_value(WorkflowTransition, "reason", "x"), proposal.pk])
    html = signed_in("nina").get(page(proposal)).content.decode()
    assert 'id="chain-status">BROKEN<' in html and "seq 1: hash mismatch" in html


# --- firing ----------------------------------------------------------------------------------

@pytest.mark.parametrize("event, state, label", [("approve", "approved", "Approve"), ("reject", "rejected", "Reject")])
def test_post_fires_and_shows_a_success_message(signed_in, event, state, label):
    proposal = submit(PAUSE)
    client = signed_in("rita")
    response = client.post(fire_url(proposal, event), {"comment": "Reviewed the rollout"})
    assert response.status_code == 302 and response["Location"] == page(proposal)
    followed = client.get(response["Location"])
    assert f"{label}: done. The workflow is now {state}." in messages_of(followed)
    assert f"{label}: done. The workflow is now {state}." in followed.content.decode()
    row = reload(proposal)
    assert (row.current_state, row.version) == (state, 3)
    assert row.transitions.get(seq=3).triggered_by == "rita"
    assert buttons(followed) == []


def test_request_override_and_both_custodians_through_the_pages(signed_in):
    proposal = submit(HALT)
    rita, sam = signed_in("rita"), signed_in("sam")
    response = rita.post(fire_url(proposal, "request_override"), {"comment": "The launch depends on it"}, follow=True)
    assert "Request override: done. The workflow is now override requested." in messages_of(response)
    override = WorkflowInstance.objects.get(workflow_type="override")
    assert override.state_data["justification"] == "The launch depends on it"
    binding = override.state_data["binding_hash"]
    response = sam.post(fire_url(override, "approve"), {"comment": "ok", "role": "", "binding_hash": binding},
                        follow=True)
    assert "Approve: done. The workflow is now partially approved." in messages_of(response)
    response = rita.post(fire_url(override, "approve"), {"comment": "ok", "role": "risk_lead",
                                                         "binding_hash": binding}, follow=True)
    assert "Approve: done. The workflow is now approved." in messages_of(response)
    assert reload(proposal).current_state == "approved"


def test_vote_through_the_page(signed_in):
    vote = consensus(["nina", "sam"], quorum=1)
    response = signed_in("nina").post(fire_url(vote, "vote"), {"vote": "approve", "comment": ""}, follow=True)
    assert "Vote: done. The workflow is now voting." in messages_of(response)
    assert reload(vote).state_data["votes"] == {"nina": "approve"}


@pytest.mark.parametrize("username, make, event, form, reason", [
    ("sam", escalated, "approve", {"comment": "ok"}, "Approve needs the role risk_lead"),
    ("nina", escalated, "reject", {"comment": "no"}, "Reject needs the role risk_lead"),
    ("rita", escalated, "approve", {"comment": "  "}, "Approve needs a comment"),
    ("rita", complexity_halt, "request_override", {"comment": "please"},
     "An override of a complexity failure is refused"),
    ("rita", override_partial_by_sam, "approve", {"comment": "ok", "binding_hash": "0" * 64},
     "binding hash mismatch"),
    ("sam", override_partial_by_sam, "approve", {"comment": "again"}, "two different people"),
    ("rita", vote_naming_nina, "vote", {"vote": "approve"}, "Only the named reviewers of this consensus may vote"),
    ("nina", vote_naming_nina, "vote", {"vote": "maybe"}, "vote must be one of approve, reject"),
    ("rita", escalated, "evaluate", {"comment": "x"}, "Cannot evaluate"),
    ("rita", escalated, "launch", {"comment": "x"}, "Proposal workflows have no event"),
], ids=["security-approves", "no-role-rejects", "no-comment", "complexity-override", "stale-binding",
        "same-custodian", "not-a-reviewer", "bad-choice", "system-event", "unknown-event"])
def test_refused_post_says_why_and_changes_nothing(signed_in, username, make, event, form, reason):
    workflow = make()
    before, counts = snapshot(workflow), db_counts()
    client = signed_in(username)
    response = client.post(fire_url(workflow, event), form)
    assert response.status_code == 302 and response["Location"] == page(workflow)
    followed = client.get(response["Location"])
    shown = messages_of(followed)
    assert len(shown) == 1 and shown[0].startswith("Refused: ") and reason in shown[0], shown
    assert snapshot(workflow) == before and db_counts() == counts


def test_csrf_is_enforced(users):
    proposal = submit(PAUSE)
    client = Client(enforce_csrf_checks=True)
    client.force_login(users["rita"])
    before = snapshot(proposal)
    refused = client.post(fire_url(proposal, "approve"), {"comment": "ok"}, HTTP_REFERER=f"https://testserver{page(proposal)}")
    assert refused.status_code == 403
    assert snapshot(proposal) == before
    html = client.get(page(proposal)).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    accepted = client.post(fire_url(proposal, "approve"), {"comment": "ok", "csrfmiddlewaretoken": token},
                           HTTP_REFERER=f"https://testserver{page(proposal)}")
    assert accepted.status_code == 302
    assert reload(proposal).current_state == "approved"
