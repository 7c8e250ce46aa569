"""The decision pages under /decisions/: who may see them (anonymous → login, signed in but
not staff → 403, staff → the page), what a decision's page shows, which actions each person
is offered, what each POST does (through `governance.decisions`, with a success message or
"Refused: …"), and the links between decision, review and override pages."""

from __future__ import annotations

import re

import pytest

from calibration import services as calibration
from calibration.models import ConfigurationVersion
from decision_page_support import (ANONYMOUS, ESCALATE, HALT, HALT_COMPLEXITY, KINDS, NOT_STAFF, PAUSE, PROCEED,
                                   RISK_LEAD, SECURITY_LEAD, STAFF, SecureClient, event_url, make_user,
                                   messages_of, offered, override_url, page)
from governance import decisions, services
from governance.engine.inputs import parse_proposal
from governance.models import Decision
from workflows.persistence.models import WorkflowInstance
from workflows.roles import Role
from workflows.services import actor_for

pytestmark = pytest.mark.django_db

SIGNED_IN_STAFF = [STAFF, RISK_LEAD, SECURITY_LEAD]


def reloaded(decision) -> Decision:
    return decisions.find(decision.decision_id, customer=None)


def state_of(decision) -> tuple[str, str | None, int]:
    """(effective status, review state, number of workflows): what a refused POST must not change."""
    fresh = reloaded(decision)
    return (decisions.effective_status(fresh), fresh.workflow.current_state if fresh.workflow else None,
            WorkflowInstance.objects.count())


# --- who may see ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("target", ["list", "detail"])
def test_access(client_for, decide, kind, target):
    decision = decide(HALT)
    url = "/decisions/" if target == "list" else page(decision)
    response = client_for(kind).get(url)
    if kind == ANONYMOUS:
        assert response.status_code == 302 and response["Location"] == f"/accounts/login/?next={url}"
    elif kind == NOT_STAFF:
        assert response.status_code == 403
        html = response.content.decode()
        assert "Decisions are for staff" in html
        assert "Novel payments router" not in html and str(decision.decision_id) not in html
        assert 'href="/decisions/"' not in html  # no nav link either
    else:
        assert response.status_code == 200
        html = response.content.decode()
        assert "Novel payments router" in html
        assert 'href="/decisions/">Decisions</a>' in html  # the nav link
        if target == "list":
            assert f'href="/decisions/{decision.decision_id}/"' in html


@pytest.mark.parametrize("kind", [NOT_STAFF, *SIGNED_IN_STAFF])
def test_a_missing_decision_is_404_for_staff_and_403_for_others(client_for, kind):
    response = client_for(kind).get("/decisions/00000000-0000-0000-0000-000000000000/")
    assert response.status_code == (403 if kind == NOT_STAFF else 404)


@pytest.mark.parametrize("path", ["/decisions/not-a-uuid/", "/decisions/1234/", "/decisions/00000000-0000/"])
def test_a_malformed_id_is_404(client_for, path):
    assert client_for(STAFF).get(path).status_code == 404


@pytest.mark.parametrize("path", ["override/", "events/approve/"])
def test_posting_on_a_missing_decision_is_404(client_for, path):
    response = client_for(RISK_LEAD).post(f"/decisions/00000000-0000-0000-0000-000000000000/{path}",
                                          {"justification": "x", "comment": "x"})
    assert response.status_code == 404


# --- what a decision's page shows ---------------------------------------------------------------

def test_the_page_shows_inputs_gates_answer_and_review(client_for, decide):
    decision = decide({**HALT, "agent_id": "agent-7", "session_id": "sess-42", "risk_baseline": 0.2,
                       "risk_proposed": 0.25, "profit_baseline": 100.0, "profit_proposed": 120.0,
                       "quality_score": 0.8, "quality_subscores": [0.8, 0.9],
                       "metadata": {"team": "payments", "ticket": ["PAY-1", "PAY-2"]}})
    response = client_for(STAFF).get(page(decision))
    html = response.content.decode()
    assert '<p class="summary-text" id="summary">Novel payments router</p>' in html
    assert 'id="status">halt<' in html and 'id="effective-status">halt<' in html
    assert "Acme Payments" in html and decision.customer.customer_id in html
    # every numeric input, by its field name, with its value
    numbers = dict(re.findall(r'<tr data-input="([a-z_.]+)"><td>[^<]*<code>[^<]*</code></td><td class="num">([^<]*)</td>',
                              html))
    assert numbers == {"risk_baseline": "0.2", "risk_proposed": "0.25", "profit_baseline": "100",
                       "profit_proposed": "120", "novelty_score": "0.9", "complexity_score": "0.5",
                       "quality_score": "0.8", "quality_subscores": "0.8, 0.9", "utility_result.mean": "—",
                       "utility_result.std_error": "—"}
    assert 'data-input="estimated_impact"' in html and 'data-input="reversible"' in html
    assert 'id="agent">agent-7<' in html and "sess-42" in html
    assert "&quot;team&quot;: &quot;payments&quot;" in html and "&quot;PAY-1&quot;," in html  # pretty-printed
    # each gate: passed or failed, value, threshold, confidence, message
    gates = re.findall(r'<tr class="(passed|failed)" data-gate="([a-z]+)">', html)
    assert gates == [("passed", "risk"), ("passed", "profit"), ("failed", "novelty"), ("passed", "complexity"),
                     ("passed", "quality")]
    novelty = decision.response["gates"]["novelty"]
    row = html[html.index('data-gate="novelty"'):]
    row = row[:row.index("</tr>")]
    for label in ("value", "threshold", "confidence"):
        assert f'<td class="num" data-label="{label}">{novelty[label]}</td>' in row
    assert novelty["message"] in row
    assert 'data-gate="utility"' in html and "skipped" in html
    assert decision.response["rationale"] in html
    for step in decision.response["next_steps"]:
        assert step in html
    # review workflow: link, timeline, chain
    workflow_id = decision.review_workflow_id
    assert f'href="/workflows/{workflow_id}/"' in html
    assert 'id="chain-status">valid<' in html
    assert "#1 start" in html and "#2 evaluate" in html
    # timestamps: one format
    assert decision.created_at.strftime("%Y-%m-%d %H:%M UTC") in html


def test_the_configuration_version_links_to_its_diff(client_for, decide):
    first = decide(HALT)
    v1 = ConfigurationVersion.objects.get(version=1)
    proposer, approver = make_user("cal-a", Role.RISK_LEAD), make_user("cal-b", Role.RISK_LEAD)
    proposal = calibration.propose("tau_critical", v1.parameters["tau_critical"] + 0.05, "Drift thresholds",
                                   actor=actor_for(proposer))  # drift only: the decision stays a halt
    calibration.approve(proposal.proposal_id, actor=actor_for(approver), comment="Right")
    calibration.apply(proposal.proposal_id, actor=actor_for(proposer))
    second = decide(HALT)
    assert (first.config_version, second.config_version) == (1, 2)
    client = client_for(STAFF)
    html = client.get(page(second)).content.decode()
    assert 'href="/calibration/versions/?a=1&amp;b=2#version-diff" id="config-link">v2</a>' in html
    html = client.get(page(first)).content.decode()
    assert 'href="/calibration/versions/" id="config-link">v1</a>' in html
    assert 'href="/calibration/versions/?a=1&amp;b=2#version-diff" id="config-vs-active"' in html
    # and the link works: the versions page shows that diff
    assert 'id="version-diff"' in client.get("/calibration/versions/?a=1&b=2").content.decode()


# --- which actions each person is offered -------------------------------------------------------

@pytest.mark.parametrize("inputs, kind, actions, refusal", [
    (HALT, STAFF, [], "Requesting an override needs the role risk_lead or security_lead"),
    (HALT, RISK_LEAD, ["request_override"], None),
    (HALT, SECURITY_LEAD, ["request_override"], None),
    (ESCALATE, STAFF, [], "Requesting an override needs the role"),
    (ESCALATE, RISK_LEAD, ["request_override", "approve", "reject"], None),
    (ESCALATE, SECURITY_LEAD, ["request_override"], None),
    (PAUSE, STAFF, [], "A pause decision is not eligible for an override"),
    (PAUSE, RISK_LEAD, ["approve", "reject"], "A pause decision is not eligible for an override"),
    (PAUSE, SECURITY_LEAD, [], "a risk lead reviews it instead"),
    (HALT_COMPLEXITY, RISK_LEAD, [], "An override of a complexity failure is refused: redesign the proposal instead"),
    (HALT_COMPLEXITY, SECURITY_LEAD, [], "An override of a complexity failure is refused: redesign"),
    (PROCEED, RISK_LEAD, [], "This decision proceeded; there is nothing to override"),
    ({**HALT, "shadow_mode": True}, RISK_LEAD, [], "Shadow decisions are recorded only"),
], ids=lambda v: v if isinstance(v, str) else "+".join(v) if isinstance(v, list) else None)
def test_only_the_actions_the_user_may_take_are_shown(client_for, decide, inputs, kind, actions, refusal):
    response = client_for(kind).get(page(decide(inputs)))
    assert offered(response) == actions
    html = response.content.decode()
    for action in actions:  # each with its comment form, CSRF-protected
        form = html[html.index(f'data-event="{action}"'):]
        form = form[:form.index("</form>")]
        assert 'name="csrfmiddlewaretoken"' in form
        assert ('name="justification"' if action == "request_override" else 'name="comment"') in form
    if refusal is None:
        assert 'id="override-refusal"' not in html
    else:
        shown = re.search(r'id="override-refusal">([^<]*)<', html).group(1)
        assert refusal in shown.replace("&#x27;", "'")
    if not actions:
        assert "There is nothing you can do on this decision now." in html


def test_the_submitter_sees_withdraw_but_not_approve(client_for, make_tenant):
    rita = make_user("rhea", Role.RISK_LEAD)
    workflow = services.submit_proposal(parse_proposal(PAUSE), actor=actor_for(rita))
    decision = Decision.objects.get(review_workflow_id=workflow.workflow_id)
    client = SecureClient()
    client.force_login(rita)
    assert offered(client.get(page(decision))) == ["withdraw"]
    assert offered(client_for(RISK_LEAD).get(page(decision))) == ["approve", "reject"]  # another risk lead
    # the submitter's approval is refused even when posted directly (four eyes)
    response = client.post(event_url(decision, "approve"), {"comment": "mine"}, follow=True)
    assert messages_of(response) == ["Refused: Four eyes: a proposal you submitted is reviewed by someone else "
                                     "(you may withdraw it)"]
    response = client.post(event_url(decision, "withdraw"), {"comment": "Not needed after all"}, follow=True)
    assert messages_of(response) == ["Withdrawn: the decision's effective status is now halt."]
    assert decisions.effective_status(reloaded(decision)) == "halt"
    assert offered(response) == []


def test_a_staff_submitter_without_a_role_may_withdraw(client_for):
    stan = make_user("stanley")
    workflow = services.submit_proposal(parse_proposal(ESCALATE), actor=actor_for(stan))
    decision = Decision.objects.get(review_workflow_id=workflow.workflow_id)
    client = SecureClient()
    client.force_login(stan)
    response = client.get(page(decision))
    assert offered(response) == ["withdraw"]
    assert "none: submitted by a signed-in person" in response.content.decode()  # no tenant


# --- each POST, for each kind of user ----------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_request_override(client_for, decide, kind):
    decision = decide(HALT)
    before = state_of(decision)
    client = client_for(kind)
    response = client.post(override_url(decision), {"justification": "The launch depends on it"})
    if kind == ANONYMOUS:
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=")
    elif kind == NOT_STAFF:
        assert response.status_code == 403
    else:
        assert response.status_code == 302 and response["Location"] == page(decision)
        followed = client.get(response["Location"])
        shown = messages_of(followed)
        if kind == STAFF:
            assert shown == ["Refused: Requesting an override needs the role risk_lead or security_lead, or the "
                             "tenant's API key"]
        else:
            assert len(shown) == 1 and shown[0].startswith(
                "Override requested: it now needs a risk lead and a security lead")
            override = WorkflowInstance.objects.get(workflow_type="override")
            data = override.state_data
            assert data["proposal_id"] == str(decision.decision_id)
            assert data["justification"] == "The launch depends on it"
            assert data["requested_by"] == {RISK_LEAD: "rita", SECURITY_LEAD: "sam"}[kind]
            html = followed.content.decode()
            assert f'href="/workflows/{override.workflow_id}/"' in html  # the override, linked
            assert 'id="override-justification-text">The launch depends on it<' in html
            assert "Pending" in html and "no approval yet: needs a risk lead and a security lead" in html
            assert offered(followed) == []  # once per decision
            assert "already requested" in html
            # the other custodian is told where to sign
            other = client_for(SECURITY_LEAD if kind == RISK_LEAD else RISK_LEAD)
            assert 'id="override-actions">On the override you can approve or reject' in \
                other.get(page(decision)).content.decode()
            return
    assert state_of(decision) == before


@pytest.mark.parametrize("form, reason", [
    ({}, "justification is required"),
    ({"justification": "   "}, "justification is required"),
    ({"justification": "x" * 4001}, "at most 4000 characters"),
])
def test_a_bad_justification_is_refused(client_for, decide, form, reason):
    decision = decide(HALT)
    before = state_of(decision)
    response = client_for(RISK_LEAD).post(override_url(decision), form, follow=True)
    shown = messages_of(response)
    assert len(shown) == 1 and shown[0].startswith("Refused: ") and reason in shown[0]
    assert state_of(decision) == before


def test_override_of_a_complexity_failure_is_refused_when_posted(client_for, decide):
    decision = decide(HALT_COMPLEXITY)
    before = state_of(decision)
    response = client_for(RISK_LEAD).post(override_url(decision), {"justification": "please"}, follow=True)
    assert messages_of(response) == ["Refused: An override of a complexity failure is refused: redesign the "
                                     "proposal instead"]
    assert state_of(decision) == before


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("event, effective", [("approve", "proceed"), ("reject", "halt")])
def test_approve_or_reject_a_paused_decision(client_for, decide, kind, event, effective):
    decision = decide(PAUSE)
    before = state_of(decision)
    assert before[:2] == ("pause", "in_review")
    client = client_for(kind)
    response = client.post(event_url(decision, event), {"comment": "Reviewed the rollout plan"})
    if kind == ANONYMOUS:
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=")
    elif kind == NOT_STAFF:
        assert response.status_code == 403
    else:
        assert response.status_code == 302 and response["Location"] == page(decision)
        followed = client.get(response["Location"])
        shown = messages_of(followed)
        if kind == RISK_LEAD:
            label = {"approve": "Approved", "reject": "Rejected"}[event]
            assert shown == [f"{label}: the decision's effective status is now {effective}."]
            assert state_of(decision)[:2] == (effective, {"approve": "approved", "reject": "rejected"}[event])
            html = followed.content.decode()
            assert f'id="effective-status">{effective}<' in html and 'id="status">pause<' in html
            assert "Reviewed the rollout plan" in html  # the timeline
            assert offered(followed) == []
            # the list shows the new effective status too
            row = client.get("/decisions/").context["rows"][0]
            assert (row["status"], row["effective"]) == ("pause", effective)
            return
        assert len(shown) == 1 and shown[0].startswith("Refused: ")
    assert state_of(decision) == before


@pytest.mark.parametrize("event", ["approve", "reject", "withdraw"])
def test_a_review_without_a_comment_is_refused(client_for, decide, event):
    decision = decide(PAUSE)
    before = state_of(decision)
    response = client_for(RISK_LEAD).post(event_url(decision, event), {"comment": ""}, follow=True)
    shown = messages_of(response)
    assert len(shown) == 1 and shown[0].startswith("Refused: ")
    assert state_of(decision) == before


@pytest.mark.parametrize("inputs, event, reason", [
    (PROCEED, "approve", "This decision opened no review"),
    (PAUSE, "request_override", "event must be one of approve, reject, withdraw"),
    (PAUSE, "launch", "event must be one of approve, reject, withdraw"),
])
def test_events_that_do_not_apply_are_refused(client_for, decide, inputs, event, reason):
    decision = decide(inputs)
    before = state_of(decision)
    response = client_for(RISK_LEAD).post(event_url(decision, event), {"comment": "x"}, follow=True)
    shown = messages_of(response)
    assert len(shown) == 1 and shown[0].startswith("Refused: ") and reason in shown[0], shown
    assert state_of(decision) == before


@pytest.mark.parametrize("url", ["override", "event"])
def test_posts_need_post_and_csrf(decide, url):
    decision = decide(PAUSE)
    target = override_url(decision) if url == "override" else event_url(decision, "approve")
    rita = make_user("rhonda", Role.RISK_LEAD)
    client = SecureClient(enforce_csrf_checks=True)
    client.force_login(rita)
    assert client.get(target).status_code == 405
    assert client.post(target, {"comment": "x", "justification": "x"}).status_code == 403  # no CSRF token
    assert WorkflowInstance.objects.filter(workflow_type="override").count() == 0
    assert reloaded(decision).workflow.current_state == "in_review"


def test_the_whole_override_from_the_decision_page(client_for, decide):
    decision = decide(ESCALATE)
    rita, sam = client_for(RISK_LEAD), client_for(SECURITY_LEAD)
    rita.post(override_url(decision), {"justification": "Needed for the launch"})
    override = WorkflowInstance.objects.get(workflow_type="override")
    binding = override.state_data["binding_hash"]
    for client in (sam, rita):
        client.post(f"/workflows/{override.workflow_id}/events/approve/", {"comment": "ok", "binding_hash": binding})
    html = rita.get(page(decision)).content.decode()
    assert 'id="effective-status">proceed<' in html and 'id="status">escalate<' in html
    custodians = html[html.index('id="custodians"'):]
    custodians = custodians[:custodians.index("</dd>")]
    assert "sam as security_lead" in custodians and "rita as risk_lead" in custodians
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", custodians)


# --- back links from the workflow pages ---------------------------------------------------------

@pytest.mark.parametrize("kind", SIGNED_IN_STAFF)
def test_the_review_workflow_page_shows_and_links_its_decision(client_for, decide, kind):
    decision = decide(ESCALATE)
    html = client_for(kind).get(f"/workflows/{decision.review_workflow_id}/").content.decode()
    card = html[html.index('id="decision-card"'):]
    card = card[:card.index("</div>")]
    assert 'id="decision-summary">Novel and big<' in card
    assert f'href="/decisions/{decision.decision_id}/" id="decision-link"' in card
    assert "escalate" in card and "novelty" in card and "Acme Payments" in card
    assert "risk 0 → 0 · profit 0 → 0 · novelty 0.9 · complexity 0.5 · quality 0.7 · impact high" in card


def test_the_override_workflow_page_shows_the_decision_it_overrides(client_for, decide):
    decision = decide(HALT)
    decisions.request_override(decision.decision_id, actor=actor_for(make_user("rob", Role.RISK_LEAD)),
                               customer=None, justification="Launch")
    override = WorkflowInstance.objects.get(workflow_type="override")
    html = client_for(SECURITY_LEAD).get(f"/workflows/{override.workflow_id}/").content.decode()
    assert "The decision this override would let proceed" in html
    assert 'id="decision-summary">Novel payments router<' in html
    assert f'href="/decisions/{decision.decision_id}/" id="decision-link"' in html
    overrides = html[html.index("<dt>Overrides</dt>"):]
    overrides = overrides[:overrides.index("</dd>")]
    assert "Novel payments router" in overrides and f'href="/workflows/{decision.review_workflow_id}/"' in overrides
    assert str(decision.decision_id) not in overrides  # no bare UUID


def test_workflow_pages_show_the_decision_but_link_it_only_for_staff(decide):
    decision = decide(ESCALATE)
    nora = make_user("nora", staff=False)
    client = SecureClient()
    client.force_login(nora)
    html = client.get(f"/workflows/{decision.review_workflow_id}/").content.decode()
    assert 'id="decision-summary">Novel and big<' in html
    assert f'href="/decisions/{decision.decision_id}/"' not in html and "its page is open to staff" in html
    inbox = client.get("/workflows/").content.decode()
    assert "Novel and big" in inbox and f'href="/decisions/{decision.decision_id}/"' not in inbox


def test_the_inbox_rows_say_which_decision_and_tenant(client_for, decide):
    escalated = decide(ESCALATE)
    halted = decide(HALT)
    override = decisions.request_override(halted.decision_id, actor=actor_for(make_user("rob", Role.RISK_LEAD)),
                                          customer=None, justification="Launch")
    client = client_for(SECURITY_LEAD)
    response = client.get("/workflows/")
    html = response.content.decode()
    waiting = html[:html.index("<h2>All workflows</h2>")]
    # the security lead is waited for on the override, on its workflow page (where the
    # signature form is); an escalation waits for a risk lead's review, not for them
    assert (f'href="/workflows/{override["workflow_id"]}/" class="row-link" '
            f'title="Override of: Novel payments router">') in waiting
    assert "needs a risk lead and a security lead signature" in waiting
    assert f'href="/decisions/{escalated.decision_id}/"' not in waiting
    everything = html[html.index("<h2>All workflows</h2>"):]
    assert everything.count('<div class="muted row-tenant" style="font-size:.8rem">Acme Payments</div>') == 3
    assert f'href="/decisions/{halted.decision_id}/" class="row-link" title="Novel payments router">' in everything
    assert f'href="/decisions/{escalated.decision_id}/" class="row-link" title="Novel and big">' in everything
