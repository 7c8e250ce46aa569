"""governance 0010 on a database that already holds data: proposal workflows opened before
every path stored a decision get their decision (linked both ways, digested), and the
migration goes back with tenant-less decisions present."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from governance import decisions, services
from governance.engine.decide import pcw_decide
from governance.engine.inputs import parse_proposal
from governance.models import Decision, Tier
from governance.sealing import decision_digest
from workflows import services as workflow_services
from workflows.machines import Actor
from workflows.persistence.durable import DurableWorkflowEngine

BEFORE = [("governance", "0009_append_only_telemetry")]


def migrate(targets) -> None:
    MigrationExecutor(connection).migrate(targets)


@pytest.fixture
def back_to_latest_afterwards():
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    yield latest
    migrate(latest)
    assert not MigrationExecutor(connection).migration_plan(latest)


def proposal_workflow_as_before(customer, inputs: dict):
    """What POST /api/workflows/proposals stored before governance 0010: a workflow only."""
    proposal = parse_proposal(inputs)
    body = pcw_decide(proposal, services.active_config()[1], config_version=1).to_dict()
    workflow = workflow_services.start_workflow(
        "proposal", actor=Actor("rita"), data={"proposal": decisions._proposal_data(proposal)}, customer=customer)
    workflow_services.fire_locked(workflow, "evaluate", actor=Actor.system(), comment="", params={"decision": body},
                                  request_id="", now=workflow.created_at)
    return workflow, body


@pytest.mark.django_db(transaction=True)
def test_existing_proposal_workflows_get_their_decision(back_to_latest_afterwards):
    customer, _, _ = services.create_customer("Acme", tier=Tier.objects.get(name="team"))
    migrate(BEFORE)
    halted, halt_body = proposal_workflow_as_before(customer, {"proposal_summary": "Old halt", "novelty_score": 0.9})
    untenanted, pause_body = proposal_workflow_as_before(None, {"proposal_summary": "Old pause",
                                                                "estimated_impact": "high"})

    migrate(back_to_latest_afterwards)
    for workflow, body, tenant in ((halted, halt_body, customer), (untenanted, pause_body, None)):
        decision = Decision.objects.get(decision_id=body["decision_id"])
        assert decision.review_workflow_id == workflow.workflow_id and decision.customer == tenant
        assert decision.response == body and decision.status == body["status"]
        assert decision.content_hash == decision_digest(decision)
        assert decision.workflow.state_data["decision"]["decision_id"] == body["decision_id"]
    listed = decisions.as_json([decisions.find(halt_body["decision_id"], customer=customer)])[0]
    assert listed["review_state"] == "rejected" and listed["effective_status"] == "halt"
    assert all(report.is_valid for report in DurableWorkflowEngine().verify_all())

    # Back again: the decision without a tenant has no place in the older schema.
    migrate(BEFORE)
    assert Decision.objects.count() == 1
    migrate(back_to_latest_afterwards)
    assert Decision.objects.filter(customer=None).count() == 1  # re-created from its workflow
