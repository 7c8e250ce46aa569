"""ensure_utc, to_dict/from_dict on every workflow type, and the seed's rollback procedure
(export with the repository → JSON → empty tables → from_dict + save_checkpoint)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from asgiref.sync import async_to_sync

from workflows import services
from workflows.chain import transition_hash
from workflows.machines import Actor
from workflows.persistence.durable import DurableWorkflowEngine
from workflows.persistence.models import WorkflowCheckpoint, WorkflowInstance
from workflows.persistence.repository import RestoreError, WorkflowPersistence
from workflows.serialization import TimestampError, ensure_utc, utc_iso
from workflows.workflow import WORKFLOW_CLASSES, ConsensusWorkflow, OverrideWorkflow, ProposalWorkflow, Workflow
from wf_support import (ESCALATE, HALT, PAUSE, PROCEED, RISK, SECURITY, all_hashes, consensus, db_counts, reload,
                        submit, wipe_workflow_tables)

UTC = timezone.utc


# --- ensure_utc ------------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    (datetime(2024, 3, 1, 12, 0, 0, 123456), datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)),  # naive = UTC
    (datetime(2024, 3, 1, 12, 0, tzinfo=UTC), datetime(2024, 3, 1, 12, 0, tzinfo=UTC)),
    (datetime(2024, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))), datetime(2024, 3, 1, 10, 0, tzinfo=UTC)),
    (datetime(2024, 3, 1, 12, 0, tzinfo=timezone(-timedelta(hours=5, minutes=30))),
     datetime(2024, 3, 1, 17, 30, tzinfo=UTC)),
    (datetime(2024, 7, 1, 12, 0, tzinfo=ZoneInfo("Europe/Berlin")), datetime(2024, 7, 1, 10, 0, tzinfo=UTC)),
    ("2024-03-01T12:00:00Z", datetime(2024, 3, 1, 12, 0, tzinfo=UTC)),
    ("2024-03-01T12:00:00.000001z", datetime(2024, 3, 1, 12, 0, 0, 1, tzinfo=UTC)),
    ("2024-03-01T12:00:00+00:00", datetime(2024, 3, 1, 12, 0, tzinfo=UTC)),
    ("2024-03-01T12:00:00+02:00", datetime(2024, 3, 1, 10, 0, tzinfo=UTC)),
    ("2024-03-01T12:00:00.5-05:30", datetime(2024, 3, 1, 17, 30, 0, 500000, tzinfo=UTC)),
    ("2024-03-01T00:30:00+02:00", datetime(2024, 2, 29, 22, 30, tzinfo=UTC)),  # crosses a (leap) day
    ("  2024-03-01T12:00:00Z \n", datetime(2024, 3, 1, 12, 0, tzinfo=UTC)),
], ids=["naive", "aware-utc", "aware-+02:00", "aware--05:30", "aware-zoneinfo", "Z", "lower-z", "+00:00",
        "str-+02:00", "str--05:30", "day-boundary", "whitespace"])
def test_ensure_utc_accepts(value, expected):
    result = ensure_utc(value)
    assert result == expected
    assert result.tzinfo is UTC and result.utcoffset() == timedelta(0)
    assert (result.year, result.hour, result.minute, result.microsecond) == (
        expected.year, expected.hour, expected.minute, expected.microsecond)


@pytest.mark.parametrize("value, named", [
    ("2024-03-01T12:00:00", "'2024-03-01T12:00:00' has no UTC offset"),
    ("2024-03-01", "'2024-03-01' has no UTC offset"),
    ("garbage", "'garbage'"),
    ("", "''"),
    ("2024-13-01T00:00:00Z", "'2024-13-01T00:00:00Z'"),
    (1709294400, "int 1709294400"),
    (1709294400.5, "float 1709294400.5"),
    (None, "NoneType None"),
    (date(2024, 3, 1), "date datetime.date(2024, 3, 1)"),
    (["2024-03-01T12:00:00Z"], "list"),
], ids=["no-offset", "date-string", "garbage", "empty", "bad-month", "int", "float", "none", "date", "list"])
def test_ensure_utc_refuses_with_a_clear_error(value, named):
    with pytest.raises(TimestampError) as info:
        ensure_utc(value)
    assert named in str(info.value)
    assert isinstance(info.value, ValueError)


def test_utc_iso_is_the_one_textual_form():
    assert utc_iso("2024-03-01T12:00:00+02:00") == "2024-03-01T10:00:00.000000Z"
    assert utc_iso(datetime(2024, 3, 1, 10, 0)) == "2024-03-01T10:00:00.000000Z"


# --- to_dict / from_dict ---------------------------------------------------------------------

def varied_workflows():
    """One of each type, with several transitions each, in several states."""
    halted = submit(HALT)
    override = services.request_override(halted.workflow_id, actor=RISK, justification="Needed — für den Start")
    services.fire_event(override.workflow_id, "approve", actor=RISK, comment="ok")
    paused = submit(PAUSE)
    escalated = submit(ESCALATE)
    services.request_override(escalated.workflow_id, actor=SECURITY, justification="second")
    approved = submit(PROCEED)
    vote = consensus(["ann", "ben", "cat"], quorum=2)
    services.fire_event(vote.workflow_id, "vote", actor=Actor("ann"), params={"vote": "approve"})
    done = consensus(["ann"], quorum=1)
    services.fire_event(done.workflow_id, "vote", actor=Actor("ann"), params={"vote": "reject"})
    return [reload(w) for w in (halted, override, paused, escalated, approved, vote, done)]


@pytest.mark.django_db
@pytest.mark.parametrize("kind, cls", [("proposal", ProposalWorkflow), ("consensus", ConsensusWorkflow),
                                       ("override", OverrideWorkflow)])
def test_to_dict_from_dict_round_trip(kind, cls):
    varied_workflows()
    repo = WorkflowPersistence()
    loaded = repo.list_workflows_sync(workflow_type=kind)
    assert loaded and all(type(w) is cls for w in loaded)
    for workflow in loaded:
        data = workflow.to_dict()
        assert data["workflow_type"] == kind and len(data["transitions"]) == workflow.version
        through_json = json.loads(json.dumps(data))
        assert through_json == data
        for loader in (Workflow.from_dict, cls.from_dict):
            back = loader(through_json)
            assert type(back) is cls
            assert back == workflow
            assert back.to_dict() == data
        assert repo.load_sync(workflow.workflow_id) == workflow


@pytest.mark.django_db
def test_from_dict_normalises_offsets_and_checks_the_type():
    proposal = submit(HALT)
    data = WorkflowPersistence().load_sync(proposal.workflow_id).to_dict()
    shifted = json.loads(json.dumps(data))
    created = ensure_utc(data["created_at"])
    shifted["created_at"] = created.astimezone(timezone(timedelta(hours=2))).isoformat()
    shifted["transitions"][0]["created_at"] = ensure_utc(data["transitions"][0]["created_at"]).astimezone(
        timezone(-timedelta(hours=5, minutes=30))).isoformat()
    assert Workflow.from_dict(shifted).to_dict() == data
    with pytest.raises(ValueError, match="ConsensusWorkflow cannot load a 'proposal'"):
        ConsensusWorkflow.from_dict(data)
    with pytest.raises(ValueError, match="unknown type 'ballot'"):
        Workflow.from_dict({**data, "workflow_type": "ballot"})
    with pytest.raises(ValueError, match="missing field"):
        Workflow.from_dict({k: v for k, v in data.items() if k != "version"})
    with pytest.raises(ValueError, match=r"transitions\[2\]: missing hash"):
        Workflow.from_dict({**data, "transitions": [data["transitions"][0],
                                                    {k: v for k, v in data["transitions"][1].items() if k != "hash"}]})
    with pytest.raises(TimestampError, match="no UTC offset"):
        Workflow.from_dict({**data, "created_at": "2024-03-01T12:00:00"})


# --- the rollback procedure ------------------------------------------------------------------

def stored_rows():
    return sorted((str(w.workflow_id), w.workflow_type, w.current_state, w.status, json.dumps(w.state_data,
                   sort_keys=True), w.version, utc_iso(w.created_at), utc_iso(w.updated_at))
                  for w in WorkflowInstance.objects.all())


def newest_checkpoint_hashes():
    return {str(w.workflow_id): WorkflowCheckpoint.objects.get(workflow=w, seq=w.version).hash
            for w in WorkflowInstance.objects.all()}


@pytest.mark.django_db
def test_awaitable_list_workflows_filters_by_status():
    varied_workflows()
    repo = WorkflowPersistence()
    pending = async_to_sync(repo.list_workflows)(status="pending")
    assert pending == repo.list_workflows_sync(status="pending")
    assert {w.status for w in pending} == {"pending"}
    assert len(pending) == WorkflowInstance.objects.filter(status="pending").count() > 0
    assert {(w.workflow_type, w.current_state) for w in pending} == {("proposal", "in_review"),
                                                                      ("override", "pending")}
    everything = async_to_sync(repo.list_workflows)()
    assert len(everything) == WorkflowInstance.objects.count()
    assert async_to_sync(repo.list_workflows)(status="active", workflow_type="consensus")[0].current_state == "voting"
    with pytest.raises(ValueError, match="status must be one of"):
        async_to_sync(repo.list_workflows)(status="open")


@pytest.mark.django_db
def test_rollback_procedure_restores_identical_verified_chains(tmp_path):
    varied_workflows()
    repo = WorkflowPersistence()
    hashes, rows, newest = all_hashes()["transitions"], stored_rows(), newest_checkpoint_hashes()
    counts = db_counts()

    # export: the synchronous twin and the seed's awaitable give the same workflows
    exported = [w.to_dict() for w in repo.list_workflows_sync()]
    assert exported == [w.to_dict() for w in async_to_sync(repo.list_workflows)()]
    path = tmp_path / "workflow-backup.json"
    with open(path, "w") as f:
        json.dump(exported, f)

    # ... the upgrade fails; the workflow tables are emptied ...
    wipe_workflow_tables()
    assert db_counts() == (0, 0, 0)

    with open(path) as f:
        backup = json.load(f)
    for position, data in enumerate(backup):
        workflow = WORKFLOW_CLASSES[data["workflow_type"]].from_dict(data) if position % 2 else Workflow.from_dict(data)
        if position % 3 == 0:
            checkpoint = async_to_sync(repo.save_checkpoint)(workflow, actor_id="migration-rollback")
        else:
            checkpoint = repo.save_checkpoint_sync(workflow, actor_id="migration-rollback")
        assert (checkpoint.seq, checkpoint.created_by) == (workflow.version, "migration-rollback")

    engine = DurableWorkflowEngine()
    for data in backup:
        is_valid, message = engine.verify_audit_chain(data["workflow_id"])
        assert is_valid, f"Audit chain broken: {message}"
    assert all_hashes()["transitions"] == hashes
    assert stored_rows() == rows
    assert newest_checkpoint_hashes() == newest  # same data, so the same checkpoint hash
    assert db_counts()[:2] == counts[:2]
    assert [w.to_dict() for w in repo.list_workflows_sync()] == exported

    # saving the same history again changes nothing
    before = db_counts()
    for data in backup:
        repo.save_checkpoint_sync(Workflow.from_dict(data), actor_id="migration-rollback")
    assert db_counts() == before


def broken(data, how):
    data = json.loads(json.dumps(data))
    transitions = data["transitions"]
    if how == "changed-reason":
        transitions[1]["reason"] = "rewritten"
    elif how == "changed-payload":
        transitions[2]["payload"]["status"] = "proceed"
    elif how == "deleted-transition":
        del transitions[1]
    elif how == "swapped":
        transitions[1]["seq"], transitions[2]["seq"] = 3, 2
        transitions[1], transitions[2] = transitions[2], transitions[1]
    elif how == "broken-link":
        transitions[2]["prev_hash"] = "0" * 64
    elif how == "missing-last":
        transitions.pop()
    elif how == "state-mismatch":
        data["current_state"] = "approved"
    return data


@pytest.mark.django_db
@pytest.mark.parametrize("how, message", [
    ("changed-reason", "seq 2: hash mismatch"),
    ("changed-payload", "seq 3: hash mismatch"),
    ("deleted-transition", "seq 2: gap in seq"),
    ("swapped", "seq 2: broken link"),
    ("broken-link", "seq 3: broken link"),
    ("missing-last", "seq 3: gap in seq"),
    ("state-mismatch", "current_state does not match its last transition"),
])
def test_save_checkpoint_refuses_a_broken_chain(how, message):
    proposal = submit(HALT)
    services.request_override(proposal.workflow_id, actor=RISK, justification="x")
    data = WorkflowPersistence().load_sync(proposal.workflow_id).to_dict()
    assert data["version"] == 3  # start, evaluate, request_override
    wipe_workflow_tables()
    with pytest.raises(RestoreError, match=message):
        WorkflowPersistence().save_checkpoint_sync(Workflow.from_dict(broken(data, how)), actor_id="migration-rollback")
    with pytest.raises(RestoreError, match=message):
        async_to_sync(WorkflowPersistence().save_checkpoint)(Workflow.from_dict(broken(data, how)),
                                                              actor_id="migration-rollback")
    assert db_counts() == (0, 0, 0)


@pytest.mark.django_db
def test_save_checkpoint_appends_what_the_database_lacks_and_refuses_a_contradiction():
    vote = consensus(["ann", "ben", "cat"])
    repo = WorkflowPersistence()
    services.fire_event(vote.workflow_id, "vote", actor=Actor("ann"), params={"vote": "approve"})
    older = repo.load_sync(vote.workflow_id).to_dict()
    services.fire_event(vote.workflow_id, "vote", actor=Actor("ben"), params={"vote": "reject"})
    newer = repo.load_sync(vote.workflow_id).to_dict()
    # a forged history for the same id: valid on its own, but ben "approved" at seq 3
    forged = json.loads(json.dumps(newer))
    last = forged["transitions"][2]
    last["payload"]["vote"] = "approve"
    last["hash"] = transition_hash(workflow_id=vote.workflow_id, seq=3, from_state=last["from_state"],
                                   to_state=last["to_state"], triggered_by=last["triggered_by"],
                                   reason=last["reason"], payload=last["payload"], created_at=last["created_at"],
                                   prev_hash=last["prev_hash"])
    forged["state_data"]["votes"]["ben"] = "approve"
    wipe_workflow_tables()

    repo.save_checkpoint_sync(Workflow.from_dict(older), actor_id="migration-rollback")
    assert reload(vote).version == 2
    repo.save_checkpoint_sync(Workflow.from_dict(newer), actor_id="migration-rollback")  # appends seq 3
    row = reload(vote)
    assert (row.version, row.state_data["votes"]) == (3, {"ann": "approve", "ben": "reject"})
    assert repo.load_sync(vote.workflow_id).to_dict() == newer
    assert DurableWorkflowEngine().verify_audit_chain(vote.workflow_id)[0] is True

    before = db_counts()
    with pytest.raises(RestoreError, match="stored history differs"):
        repo.save_checkpoint_sync(Workflow.from_dict(forged), actor_id="migration-rollback")
    assert db_counts() == before and repo.load_sync(vote.workflow_id).to_dict() == newer


@pytest.mark.django_db
def test_export_covers_calibration_workflows_too():
    """The rollback procedure exports *all* workflows; calibration proposals are workflows too."""
    from calibration import services as calibration_services

    submit(HALT)
    calibration_services.propose("tau_warning", 0.25, "Fewer false alarms", actor=RISK)
    repo = WorkflowPersistence()
    exported = [w.to_dict() for w in repo.list_workflows_sync()]
    assert sorted(d["workflow_type"] for d in exported) == ["calibration", "proposal"]
    for data in exported:
        assert Workflow.from_dict(json.loads(json.dumps(data))).to_dict() == data
