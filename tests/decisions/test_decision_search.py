"""The /decisions/ list: each filter (tenant, status, effective status, failing gate,
impact, agent, shadow, date range), the text search in summaries that are encrypted at
rest (SQL filters first, then decrypting newest first until the page is full or the scan
limit is reached, then "continue searching" from the keyset cursor), keyset pagination,
and invalid filters answered with form errors."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs

import pytest
from django.db import connection

from decision_page_support import (ESCALATE, HALT, HALT_COMPLEXITY, PAUSE, PROCEED, RISK_LEAD, STAFF, T0,
                                   listed, make_user)
from governance import decision_views, decisions, services
from governance.decision_views import with_effective_status
from governance.engine.inputs import parse_proposal
from governance.models import Decision
from workflows.roles import Role
from workflows.services import actor_for

pytestmark = pytest.mark.django_db

HOUR, DAY = 60, 24 * 60


@pytest.fixture
def corpus(decide, tenant, make_tenant):
    """Eight decisions over four days, two tenants and one without, newest last:
    name -> Decision. "paused" has been approved (effective proceed), "escalated" has an
    override requested, "withdrawn" was withdrawn by its submitter."""
    globex = make_tenant("Globex")
    made = {
        "halted": decide({**HALT, "agent_id": "agent-a"}, minutes=0),
        "paused": decide({**PAUSE, "agent_id": "agent-b"}, customer=globex, minutes=HOUR),
        "proceeded": decide({**PROCEED, "agent_id": "agent-a"}, minutes=2 * HOUR),
        "escalated": decide({**ESCALATE, "proposal_summary": "NOVEL ranking, big"}, customer=globex, minutes=DAY),
        "complex": decide(HALT_COMPLEXITY, minutes=2 * DAY),
        "shadow": decide({**HALT, "proposal_summary": "Shadow run of the novel router", "shadow_mode": True},
                         minutes=3 * DAY),
    }
    submitter = make_user("sue")
    workflow = services.submit_proposal(parse_proposal({**PAUSE, "proposal_summary": "Person's own change"}),
                                        actor=actor_for(submitter), now=T0 + timedelta(minutes=3 * DAY + HOUR))
    made["tenantless"] = Decision.objects.get(review_workflow_id=workflow.workflow_id)
    workflow = services.submit_proposal(parse_proposal({**PAUSE, "proposal_summary": "Taken back"}),
                                        actor=actor_for(submitter), now=T0 + timedelta(minutes=3 * DAY + 2 * HOUR))
    made["withdrawn"] = Decision.objects.get(review_workflow_id=workflow.workflow_id)
    rita = actor_for(make_user("rob", Role.RISK_LEAD))
    decisions.act(made["paused"].decision_id, "approve", actor=rita, comment="fine")
    decisions.request_override(made["escalated"].decision_id, actor=rita, customer=None, justification="launch")
    decisions.act(made["withdrawn"].decision_id, "withdraw", actor=actor_for(submitter), comment="not needed")
    made["globex"] = globex
    return made


def names(corpus, response) -> list[str]:
    by_id = {str(d.decision_id): name for name, d in corpus.items() if isinstance(d, Decision)}
    return [by_id[i] for i in listed(response)]


NEWEST_FIRST = ["withdrawn", "tenantless", "shadow", "complex", "escalated", "proceeded", "paused", "halted"]


@pytest.mark.parametrize("params, expected", [
    ({}, NEWEST_FIRST),
    ({"tenant": "ACME"}, ["shadow", "complex", "proceeded", "halted"]),
    ({"tenant": "GLOBEX"}, ["escalated", "paused"]),
    ({"tenant": "none"}, ["withdrawn", "tenantless"]),
    ({"status": "halt"}, ["shadow", "complex", "halted"]),
    ({"status": "pause"}, ["withdrawn", "tenantless", "paused"]),
    ({"effective": "proceed"}, ["proceeded", "paused"]),
    ({"effective": "halt"}, ["withdrawn", "shadow", "complex", "halted"]),
    ({"effective": "pause"}, ["tenantless"]),
    ({"effective": "escalate"}, ["escalated"]),  # an override requested, not yet decided
    ({"gate": "novelty"}, ["shadow", "complex", "escalated", "halted"]),
    ({"gate": "complexity"}, ["complex"]),
    ({"gate": "utility"}, []),  # skipped, never failing
    ({"impact": "high"}, ["withdrawn", "tenantless", "escalated", "paused"]),
    ({"impact": "medium"}, ["shadow", "complex", "proceeded", "halted"]),
    ({"agent": "agent-a"}, ["proceeded", "halted"]),
    ({"agent": "Agent-A"}, []),  # exact
    ({"shadow": "yes"}, ["shadow"]),
    ({"shadow": "no"}, ["withdrawn", "tenantless", "complex", "escalated", "proceeded", "paused", "halted"]),
    ({"since": "2026-03-03"}, ["withdrawn", "tenantless", "shadow", "complex", "escalated"]),
    ({"until": "2026-03-02"}, ["proceeded", "paused", "halted"]),  # the whole day, inclusive
    ({"since": "2026-03-03", "until": "2026-03-04"}, ["complex", "escalated"]),
    ({"q": "novel"}, ["shadow", "escalated", "halted"]),  # case-insensitive, anywhere
    ({"q": "ROUTER NOVEL"}, []),  # the words in this order, not any of them
    ({"q": "novel", "tenant": "GLOBEX"}, ["escalated"]),
    ({"q": "novel", "effective": "halt", "shadow": "no"}, ["halted"]),
    ({"status": "pause", "effective": "halt", "tenant": "none"}, ["withdrawn"]),
], ids=lambda v: "&".join(f"{k}={x}" for k, x in v.items()) or "none" if isinstance(v, dict) else None)
def test_each_filter(client_for, corpus, params, expected):
    ids = {"ACME": corpus["halted"].customer.customer_id, "GLOBEX": corpus["globex"].customer_id}
    params = {k: ids.get(v, v) for k, v in params.items()}
    response = client_for(STAFF).get("/decisions/", params)
    assert names(corpus, response) == expected
    if not expected:
        assert "No decisions match these filters" in response.content.decode()


def test_the_rows_say_what_each_decision_is(client_for, corpus):
    response = client_for(STAFF).get("/decisions/")
    rows = {r["summary"]: r for r in response.context["rows"]}
    assert (rows["Bigger change"]["status"], rows["Bigger change"]["effective"]) == ("pause", "proceed")
    assert rows["Bigger change"]["review"] == "Approved" and rows["Bigger change"]["tenant"].name == "Globex"
    assert rows["NOVEL ranking, big"]["override"] == "pending"
    assert rows["Novel payments router"]["failing"] == ["novelty"]
    assert rows["Shadow run of the novel router"]["review"] == "recorded only (shadow)"
    assert rows["Cache the rate table"]["review"] == "no review needed"
    html = response.content.decode()
    assert ('<td class="when" data-label="Time"><time class="ts" datetime="2026-03-02T10:00:00Z" '
            'title="2026-03-02 10:00:00 UTC">2026-03-02 10:00 UTC</time></td>') in html
    assert '<span class="badge pause" data-role="status">pause</span> <span class="arrow">→</span> ' \
           '<span class="badge proceed" data-role="effective"' in html
    assert '<td class="gates" data-label="Failing gates">novelty, complexity</td>' in html
    assert "override pending" in html and ">no tenant<" in html
    for decision in (d for d in corpus.values() if isinstance(d, Decision)):
        assert f'<a href="/decisions/{decision.decision_id}/"' in html


def test_the_sql_effective_status_is_the_verbs(corpus):
    annotated = {d.decision_id: d.effective_status_sql for d in with_effective_status(Decision.objects.all())}
    computed = {d.decision_id: decisions.effective_status(d) for d in Decision.objects.all()}
    assert annotated == computed
    assert set(computed.values()) == {"proceed", "pause", "escalate", "halt"}


# --- pages ---------------------------------------------------------------------------------------

def follow_next(client, response):
    assert response.context["next_query"], "no next page"
    return client.get(f"/decisions/?{response.context['next_query']}")


def test_keyset_pages_keep_the_filters(client_for, decide, monkeypatch):
    monkeypatch.setattr(decision_views, "PAGE_SIZE", 2)
    made = [decide(PAUSE if i % 2 else HALT, minutes=i) for i in range(7)]  # 0, 2, 4, 6 halt
    halts = [str(made[i].decision_id) for i in (6, 4, 2, 0)]
    client = client_for(STAFF)
    first = client.get("/decisions/", {"status": "halt"})
    assert listed(first) == halts[:2]
    assert parse_qs(first.context["next_query"])["status"] == ["halt"]
    assert 'id="next-page">Next page →<' in first.content.decode()
    second = follow_next(client, first)
    assert listed(second) == halts[2:]
    assert second.context["next_query"] is None  # nothing after the last halt
    assert 'id="first-page"' in second.content.decode()
    assert parse_qs(second.context["first_query"]) == {"status": ["halt"]}
    # a decision made meanwhile shifts nothing: the cursor is a position, not an offset
    decide(HALT, minutes=100)
    assert listed(follow_next(client, first)) == halts[2:]


def test_exactly_a_full_page_has_no_next_page(client_for, decide, monkeypatch):
    monkeypatch.setattr(decision_views, "PAGE_SIZE", 3)
    for i in range(3):
        decide(HALT, minutes=i)
    response = client_for(STAFF).get("/decisions/")
    assert len(listed(response)) == 3 and response.context["next_query"] is None


def test_the_encrypted_search_continues_after_the_scan_limit(client_for, decide, monkeypatch):
    monkeypatch.setattr(decision_views, "SCAN_LIMIT", 20)
    matching = {3, 11, 30, 44}  # positions, newest first (0 = newest)
    made = []
    for position in range(45):
        summary = f"Rotate the Signing keys, batch {position}" if position in matching else f"Routine change {position}"
        made.append(decide({**HALT, "proposal_summary": summary}, minutes=-position))
    wanted = [str(made[p].decision_id) for p in sorted(matching)]
    # the summaries are not searchable in the database: no plaintext anywhere in the column
    with connection.cursor() as cursor:
        cursor.execute("SELECT proposal_summary FROM governance_decision")
        stored = [row[0] for row in cursor.fetchall()]
    assert len(stored) == 45 and not any("signing" in str(value).lower() for value in stored)

    client = client_for(STAFF)
    page1 = client.get("/decisions/", {"q": "signing KEYS"})
    assert listed(page1) == wanted[:2]
    assert (page1.context["page"].scanned, page1.context["page"].cut_short) == (20, True)
    html = page1.content.decode()
    assert 'id="next-page">Continue searching →<' in html and 'id="search-cut-short"' in html
    assert "Searched 20 decisions" in html
    page2 = follow_next(client, page1)
    assert listed(page2) == wanted[2:3]
    assert (page2.context["page"].scanned, page2.context["page"].cut_short) == (20, True)
    page3 = follow_next(client, page2)
    assert listed(page3) == wanted[3:]
    assert (page3.context["page"].scanned, page3.context["page"].cut_short) == (5, False)
    assert page3.context["next_query"] is None

    # a full page ends the scan early, with an ordinary next page
    monkeypatch.setattr(decision_views, "PAGE_SIZE", 1)
    page1 = client.get("/decisions/", {"q": "signing"})
    assert listed(page1) == wanted[:1] and not page1.context["page"].cut_short
    assert page1.context["page"].scanned == 12  # up to the second match, which proves a next page
    assert 'id="next-page">Next page →<' in page1.content.decode()


def test_sql_filters_narrow_what_the_search_decrypts(client_for, decide, make_tenant, monkeypatch):
    monkeypatch.setattr(decision_views, "SCAN_LIMIT", 5)
    other = make_tenant("Globex")
    for i in range(10):
        decide({**HALT, "proposal_summary": f"Noise {i}"}, customer=other, minutes=-i)
    target = decide({**HALT, "proposal_summary": "The needle"}, minutes=-100)
    response = client_for(STAFF).get("/decisions/", {"q": "needle", "tenant": target.customer.customer_id})
    assert listed(response) == [str(target.decision_id)]
    assert response.context["page"].scanned == 1
    # without the tenant filter the scan limit is reached first
    response = client_for(STAFF).get("/decisions/", {"q": "needle"})
    assert listed(response) == [] and response.context["page"].cut_short
    assert listed(follow_next(client_for(STAFF), follow_next(client_for(STAFF), response))) == [str(target.decision_id)]


@pytest.mark.parametrize("params, field", [
    ({"cursor": "garbage"}, "cursor"),
    ({"cursor": "99999999999999999999999-1"}, "cursor"),
    ({"status": "maybe"}, "status"),
    ({"effective": "later"}, "effective"),
    ({"gate": "vibes"}, "gate"),
    ({"tenant": "cus_nobody"}, "tenant"),
    ({"since": "yesterday"}, "since"),
    ({"since": "2026-03-04", "until": "2026-03-03"}, "until"),
    ({"q": "x" * 201}, "q"),
])
def test_invalid_filters_are_form_errors(client_for, corpus, params, field):
    response = client_for(RISK_LEAD).get("/decisions/", params)
    assert response.status_code == 200
    assert response.context["form"].errors.keys() == {field}
    assert response.context["rows"] == [] and 'id="filter-errors"' in response.content.decode()
