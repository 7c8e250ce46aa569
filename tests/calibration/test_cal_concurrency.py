"""Approval and apply are each exactly-once under concurrency, and concurrent applies
chain their versions (PLATFORM.md §3). Real threads, each on its own database connection;
on SQLite the test database is a file for the duration (see cal_support)."""

from __future__ import annotations

import time

import pytest
from cal_support import (approved, assert_chains_valid, concurrency_capable_database, events_of, make_user, propose,
                         race, state_of)

from calibration import services
from calibration.models import CalibrationProposal, ConfigurationVersion
from calibration.services import CalibrationError
from calibration.versions import active_config
from workflows import services as workflow_services
from workflows.persistence.models import WorkflowTransition
from workflows.services import actor_for

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 4
HOLD_SECONDS = 0.3


@pytest.fixture(autouse=True)
def slow_steps(monkeypatch):
    """Each approve/apply holds its locks a little longer (as a busy database would), so
    the racing threads really overlap inside their transactions on every run instead of
    by luck of scheduling."""
    original = workflow_services.fire_locked

    def fire_locked(workflow, event_name, **kwargs):
        if event_name in ("approve", "apply"):
            time.sleep(HOLD_SECONDS)
        return original(workflow, event_name, **kwargs)

    monkeypatch.setattr(workflow_services, "fire_locked", fire_locked)


@pytest.fixture
def leads(seeded):
    """alice proposes; four other risk leads race."""
    alice = make_user("alice", risk_lead=True)
    others = [make_user(f"lead{i}", risk_lead=True) for i in range(THREADS)]
    return alice, others


def outcomes(results):
    ok = [value for kind, value in results if kind == "ok"]
    errors = [value for kind, value in results if kind == "error"]
    return ok, errors


def test_threads_approving_the_same_proposal_make_exactly_one_approval(leads, tmp_path):
    alice, others = leads
    proposal = propose(alice)
    with concurrency_capable_database(tmp_path):
        results = race(*[lambda who=who: services.approve(proposal.proposal_id, actor=actor_for(who),
                                                          comment=f"approved by {who.username}")
                         for who in others])
        ok, errors = outcomes(results)
        assert len(ok) == 1, results
        assert len(errors) == THREADS - 1
        for error in errors:
            assert isinstance(error, CalibrationError), repr(error)
            assert (error.code, error.message) == ("conflict", "Cannot approve a calibration workflow in state "
                                                               "'approved'")
        assert events_of(proposal) == ["start", "approve"]
        winner = WorkflowTransition.objects.get(workflow__calibration_proposal__pk=proposal.pk, seq=2)
        assert services.get_proposal(proposal.proposal_id).workflow.state_data["approver_id"] == winner.triggered_by
        assert winner.reason == f"approved by {winner.triggered_by}"
        assert_chains_valid()


def test_threads_applying_the_same_proposal_make_exactly_one_version(leads, tmp_path):
    alice, others = leads
    proposal = approved(alice, others[0])
    with concurrency_capable_database(tmp_path):
        results = race(*[lambda who=who: services.apply(proposal.proposal_id, actor=actor_for(who))
                         for who in [alice, *others[1:]]])
        ok, errors = outcomes(results)
        assert len(ok) == 1, results
        for error in errors:
            assert isinstance(error, CalibrationError), repr(error)
            assert (error.code, error.message) == ("conflict", "Apply needs an APPROVED proposal; this one is "
                                                               "APPLIED")
        assert list(ConfigurationVersion.objects.order_by("version").values_list("version", flat=True)) == [1, 2]
        assert ok[0].version == 2
        assert events_of(proposal) == ["start", "approve", "apply"]
        assert CalibrationProposal.objects.get(pk=proposal.pk).applied_version.version == 2
        assert active_config()[1].novelty_threshold == 0.9
        assert_chains_valid()


def test_concurrent_applies_of_different_parameters_chain_their_versions(leads, tmp_path):
    alice, others = leads
    first = approved(alice, others[0], "novelty_threshold", 0.9)
    second = approved(others[1], alice, "complexity_floor", 0.6)
    with concurrency_capable_database(tmp_path):
        results = race(lambda: services.apply(first.proposal_id, actor=actor_for(alice)),
                       lambda: services.apply(second.proposal_id, actor=actor_for(others[1])))
        ok, errors = outcomes(results)
        assert errors == [], [repr(e) for e in errors]
        assert sorted(v.version for v in ok) == [2, 3]
        versions = {v.version: v for v in ConfigurationVersion.objects.select_related("parent")}
        assert sorted(versions) == [1, 2, 3]
        assert (versions[2].parent.version, versions[3].parent.version) == (1, 2)
        latest = versions[3].parameters
        assert (latest["novelty_threshold"], latest["complexity_floor"]) == (0.9, 0.6)
        assert {versions[2].source_ref, versions[3].source_ref} == {str(first.proposal_id), str(second.proposal_id)}
        number, config = active_config()
        assert (number, config.novelty_threshold, config.complexity_floor) == (3, 0.9, 0.6)
        assert state_of(first) == state_of(second) == "applied"
        assert_chains_valid()


def test_concurrent_applies_of_the_same_parameter_apply_one_and_stale_the_other(leads, tmp_path):
    alice, others = leads
    first = approved(alice, others[0], "novelty_threshold", 0.9)
    second = approved(others[1], alice, "novelty_threshold", 0.85)
    with concurrency_capable_database(tmp_path):
        results = race(lambda: services.apply(first.proposal_id, actor=actor_for(alice)),
                       lambda: services.apply(second.proposal_id, actor=actor_for(others[1])))
        ok, errors = outcomes(results)
        assert len(ok) == 1 and len(errors) == 1, [repr(v) for _, v in results]
        assert isinstance(errors[0], CalibrationError), repr(errors[0])
        assert errors[0].code == "conflict"
        assert list(ConfigurationVersion.objects.values_list("version", flat=True)) == [2, 1]
        assert sorted([state_of(first), state_of(second)]) == ["applied", "stale"]
        applied = first if state_of(first) == "applied" else second
        assert ok[0].parameters["novelty_threshold"] == applied.proposed_value
        assert_chains_valid()
