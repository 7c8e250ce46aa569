"""Decisions stored before the JSON depth limit (docs/decisions.md, "Hostile input"): the
API then accepted metadata nested some 900 levels deep, and such a decision made the admin's
decision page fail with RecursionError. Stored data must still render everywhere it is shown,
with the levels below the display depth elided."""

from __future__ import annotations

import pytest
from decision_page_support import ANONYMOUS, HALT, NOT_STAFF, STAFF, page
from django.contrib.auth import get_user_model

from governance.json_limits import TOO_DEEP_TO_SHOW
from workflows.persistence.models import WorkflowCheckpoint, WorkflowInstance, WorkflowTransition

pytestmark = pytest.mark.django_db

STORED_DEPTH = 890  # about the deepest the API stored before the limit (897 in a test run)


def deep_metadata(depth: int) -> dict:
    """{"level": {"level": … {"level": "bottom"}}} with `depth` objects; built in a loop, as
    json.loads of such a text would itself fail in a deep enough call stack."""
    value: object = "bottom"
    for _ in range(depth):
        value = {"level": value}
    return value


@pytest.fixture
def deep_decision(decide):
    """A halted decision (so it has a review workflow) whose metadata is STORED_DEPTH deep,
    made through the services as the API made it then."""
    return decide({**HALT, "metadata": deep_metadata(STORED_DEPTH)})


@pytest.fixture
def superuser_client(client):
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", None))
    return client


@pytest.mark.parametrize("kind, status", [(ANONYMOUS, 302), (NOT_STAFF, 403), (STAFF, 200)])
def test_the_decision_page_renders_deep_metadata_to_those_who_may_see_it(deep_decision, client_for, kind, status):
    response = client_for(kind).get(page(deep_decision))

    assert response.status_code == status
    if status == 200:
        text = response.content.decode()
        assert TOO_DEEP_TO_SHOW in text
        assert "&quot;level&quot;" in text


def test_the_admin_shows_the_deep_decision_and_its_workflow_records(deep_decision, superuser_client):
    workflow = WorkflowInstance.objects.get(workflow_id=deep_decision.review_workflow_id)
    pages = [f"/admin/governance/decision/{deep_decision.pk}/change/",
             f"/admin/workflows/workflowinstance/{workflow.pk}/change/",
             *(f"/admin/workflows/workflowtransition/{t.pk}/change/"
               for t in WorkflowTransition.objects.filter(workflow=workflow)),
             *(f"/admin/workflows/workflowcheckpoint/{c.pk}/change/"
               for c in WorkflowCheckpoint.objects.filter(workflow=workflow))]

    answers = {path: superuser_client.get(path, secure=True) for path in pages}

    assert {path: r.status_code for path, r in answers.items()} == {path: 200 for path in pages}
    assert TOO_DEEP_TO_SHOW in answers[pages[0]].content.decode()  # the decision's metadata
    assert TOO_DEEP_TO_SHOW in answers[pages[1]].content.decode()  # the proposal in the workflow's state


def test_the_admin_shows_shallow_json_in_full(decide, superuser_client):
    decision = decide({**HALT, "metadata": {"ticket": "PAY-42", "labels": ["payments"]}})

    text = superuser_client.get(f"/admin/governance/decision/{decision.pk}/change/", secure=True).content.decode()

    assert "&quot;ticket&quot;: &quot;PAY-42&quot;" in text
    assert TOO_DEEP_TO_SHOW not in text


def test_the_api_still_answers_with_the_deep_decision_and_workflow(deep_decision, client_for):
    staff = client_for(STAFF)

    decision = staff.get(f"/api/decisions/{deep_decision.decision_id}")
    workflow = staff.get(f"/api/workflows/{deep_decision.review_workflow_id}")

    assert decision.status_code == 200, decision.content[:300]
    assert workflow.status_code == 200, workflow.content[:300]
    assert workflow.content.count(b'"level"') == STORED_DEPTH
