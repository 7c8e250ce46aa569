"""The hash-chained audit trail: tampering by raw SQL is detected with the exact seq, the
append-only trigger refuses UPDATE and DELETE, a transition and its checkpoint commit
together or not at all, and concurrent events leave one linear chain."""

from __future__ import annotations

import threading

import pytest
from django.db import DatabaseError, connection, transaction

from workflows import services
from workflows.chain import checkpoint_hash, transition_hash
from workflows.machines import Actor
from workflows.persistence.durable import DurableWorkflowEngine
from workflows.persistence.models import WorkflowCheckpoint, WorkflowInstance, WorkflowTransition
from wf_support import (EXPECTED_TRIGGERS, HALT, RISK, SECURITY, append_only_triggers, concurrency_capable_database, consensus, db_counts, db_value,
                        drop_append_only_triggers, reload, snapshot, submit)

T = "workflows_workflowtransition"
C = "workflows_workflowcheckpoint"
W = "workflows_workflowinstance"

pytestmark = pytest.mark.django_db


def five_transitions():
    """A consensus with five reviewers and four votes: seqs 1..5, still voting."""
    vote = consensus(["ann", "ben", "cat", "dan", "eve"])
    for name, choice in zip(["ann", "ben", "cat", "dan"], ["approve", "reject", "approve", "approve"]):
        services.fire_event(vote.workflow_id, "vote", actor=Actor(name), params={"vote": choice})
    row = reload(vote)
    assert row.version == 5
    assert DurableWorkflowEngine().verify_audit_chain(row.workflow_id) == (
        True, "chain valid: 5 transitions, 5 checkpoints")
    return row


def sql(statement, params=()):
    with connection.cursor() as cursor:
        cursor.execute(statement, list(params))
        return cursor.rowcount


def transition_pk(workflow, seq):
    return WorkflowTransition.objects.get(workflow=workflow, seq=seq).pk


def assert_broken_at(workflow, seq, why):
    is_valid, message = DurableWorkflowEngine().verify_audit_chain(workflow.workflow_id)
    assert is_valid is False
    assert message.startswith(f"seq {seq}: {why}"), message
    report = DurableWorkflowEngine().report(workflow.workflow_id)
    assert report.broken_seq == seq
    # verify_all (the command's and the restore's path) names the same seq
    [streamed] = [r for r in DurableWorkflowEngine().verify_all() if r.workflow_id == str(workflow.workflow_id)]
    assert streamed.as_tuple() == (is_valid, message)


# --- tampering -------------------------------------------------------------------------------

@pytest.mark.parametrize("seq", [1, 3, 5])
@pytest.mark.parametrize("column, value", [
    ("payload", {"event": "vote", "reviewer": "ben", "vote": "approve"}),
    ("reason", "nothing to see here"),
    ("triggered_by", "mallory"),
    ("to_state", "approved"),
    ("from_state", "rejected"),
    ("created_at", "2001-01-01 00:00:00"),
])
def test_a_changed_transition_column_is_a_hash_mismatch_at_its_seq(column, value, seq):
    workflow = five_transitions()
    drop_append_only_triggers()
    if column in ("payload", "reason", "triggered_by"):
        value = db_value(WorkflowTransition, column, value)
    assert sql(f"UPDATE {T} SET {column} = %s WHERE id = %s", [value, transition_pk(workflow, seq)]) == 1
    assert_broken_at(workflow, seq, "hash mismatch")


@pytest.mark.parametrize("seq", [2, 4])
def test_a_changed_payload_with_a_recomputed_hash_breaks_the_next_link(seq):
    workflow = five_transitions()
    drop_append_only_triggers()
    t = WorkflowTransition.objects.get(workflow=workflow, seq=seq)
    forged = {**t.payload, "vote": "approve" if t.payload["vote"] == "reject" else "reject"}
    forged_hash = transition_hash(workflow_id=workflow.workflow_id, seq=seq, from_state=t.from_state,
                                  to_state=t.to_state, triggered_by=t.triggered_by, reason=t.reason,
                                  payload=forged, created_at=t.created_at, prev_hash=t.prev_hash)
    sql(f"UPDATE {T} SET payload = %s, hash = %s WHERE id = %s",
        [db_value(WorkflowTransition, "payload", forged), forged_hash, t.pk])
    assert_broken_at(workflow, seq + 1, "broken link")


@pytest.mark.parametrize("seq", [2, 3, 5])
def test_a_replaced_stored_hash_or_prev_hash_is_detected(seq):
    workflow = five_transitions()
    drop_append_only_triggers()
    sql(f"UPDATE {T} SET prev_hash = %s WHERE id = %s", ["f" * 64, transition_pk(workflow, seq)])
    assert_broken_at(workflow, seq, "broken link")


@pytest.mark.parametrize("seq", [1, 3, 5])
def test_a_deleted_transition_is_a_gap_at_its_seq(seq):
    workflow = five_transitions()
    drop_append_only_triggers()
    assert sql(f"DELETE FROM {T} WHERE id = %s", [transition_pk(workflow, seq)]) == 1
    assert_broken_at(workflow, seq, "gap in seq")


@pytest.mark.parametrize("first, second", [(1, 2), (2, 3), (4, 5), (2, 5)])
def test_swapped_seqs_are_detected_at_the_lower_seq(first, second):
    workflow = five_transitions()
    drop_append_only_triggers()
    a, b = transition_pk(workflow, first), transition_pk(workflow, second)
    sql(f"UPDATE {T} SET seq = 999 WHERE id = %s", [a])
    sql(f"UPDATE {T} SET seq = %s WHERE id = %s", [first, b])
    sql(f"UPDATE {T} SET seq = %s WHERE id = %s", [second, a])
    assert_broken_at(workflow, first, "broken link")


@pytest.mark.parametrize("seq", [1, 3, 5])
def test_an_altered_checkpoint_is_detected_at_its_seq(seq):
    workflow = five_transitions()
    checkpoint = WorkflowCheckpoint.objects.get(workflow=workflow, seq=seq)
    data = {**checkpoint.checkpoint_data, "state_data": {**checkpoint.checkpoint_data["state_data"], "quorum": 1}}
    sql(f"UPDATE {C} SET checkpoint_data = %s WHERE id = %s",
        [db_value(WorkflowCheckpoint, "checkpoint_data", data), checkpoint.pk])
    assert_broken_at(workflow, seq, "checkpoint mismatch")


@pytest.mark.parametrize("seq", [2, 4])
def test_a_forged_checkpoint_with_a_matching_hash_is_detected(seq):
    workflow = five_transitions()
    checkpoint = WorkflowCheckpoint.objects.get(workflow=workflow, seq=seq)
    data = {**checkpoint.checkpoint_data, "current_state": "approved"}
    sql(f"UPDATE {C} SET checkpoint_data = %s, hash = %s WHERE id = %s",
        [db_value(WorkflowCheckpoint, "checkpoint_data", data), checkpoint_hash(data), checkpoint.pk])
    assert_broken_at(workflow, seq, "checkpoint mismatch")


def test_a_replaced_checkpoint_hash_is_detected():
    workflow = five_transitions()
    sql(f"UPDATE {C} SET hash = %s WHERE workflow_id = %s AND seq = 3", ["0" * 64, workflow.pk])
    assert_broken_at(workflow, 3, "checkpoint mismatch")


@pytest.mark.parametrize("column, value", [
    ("current_state", "approved"),
    ("state_data", {"subject": "something else", "reviewers": ["mallory"], "quorum": 1,
                    "approval_threshold": 0.1, "deadline": "2999-01-01T00:00:00.000000Z", "votes": {}}),
    ("status", "completed"),
])
def test_a_changed_workflow_row_is_detected_at_the_current_seq(column, value):
    workflow = five_transitions()
    if column == "state_data":
        value = db_value(WorkflowInstance, column, value)
    assert sql(f"UPDATE {W} SET {column} = %s WHERE id = %s", [value, workflow.pk]) == 1
    assert_broken_at(workflow, 5, "checkpoint mismatch")


def test_a_changed_workflow_row_with_its_newest_checkpoint_removed_is_detected():
    """The attacker also deletes the checkpoint that would contradict the row (checkpoints
    carry no trigger); the row must still agree with the last transition."""
    workflow = five_transitions()
    sql(f"DELETE FROM {C} WHERE workflow_id = %s AND seq = 5", [workflow.pk])
    sql(f"UPDATE {W} SET current_state = %s, status = %s WHERE id = %s", ["approved", "completed", workflow.pk])
    is_valid, message = DurableWorkflowEngine().verify_audit_chain(workflow.workflow_id)
    assert is_valid is False, message
    assert message.startswith("seq 5:"), message


def test_a_raised_version_is_a_gap_after_the_last_transition():
    workflow = five_transitions()
    sql(f"UPDATE {W} SET version = 6 WHERE id = %s", [workflow.pk])
    assert_broken_at(workflow, 6, "gap in seq")


def test_tampering_one_workflow_leaves_the_others_valid():
    workflow, other = five_transitions(), five_transitions()
    drop_append_only_triggers()
    sql(f"DELETE FROM {T} WHERE id = %s", [transition_pk(workflow, 2)])
    assert_broken_at(workflow, 2, "gap in seq")
    assert DurableWorkflowEngine().verify_audit_chain(other.workflow_id)[0] is True


def test_unknown_workflow_does_not_verify():
    is_valid, message = DurableWorkflowEngine().verify_audit_chain("00000000-0000-0000-0000-000000000000")
    assert is_valid is False and "no workflow" in message


# --- the append-only trigger -----------------------------------------------------------------

def test_the_triggers_dropped_by_earlier_tests_are_back():
    """Tamper tests drop the triggers inside their own transaction; the rollback restores them."""
    assert append_only_triggers() == EXPECTED_TRIGGERS[connection.vendor]


def refused_by_trigger(action):
    with pytest.raises(DatabaseError) as info:
        with transaction.atomic():  # PostgreSQL: keep the test's transaction usable
            action()
    assert "append-only" in str(info.value)
    return info.value


@pytest.mark.parametrize("statement", [
    f"UPDATE {T} SET reason = 'rewritten' WHERE id = %(pk)s",
    f"UPDATE {T} SET hash = prev_hash WHERE id = %(pk)s",
    f"UPDATE {T} SET seq = seq + 100",
    f"DELETE FROM {T} WHERE id = %(pk)s",
    f"DELETE FROM {T}",
], ids=["update-reason", "update-hash", "update-all", "delete-one", "delete-all"])
def test_trigger_refuses_raw_sql(statement):
    workflow = five_transitions()
    before = snapshot(workflow)
    pk = transition_pk(workflow, 3)
    refused_by_trigger(lambda: sql(statement.replace("%(pk)s", str(pk))))
    assert snapshot(workflow) == before
    assert DurableWorkflowEngine().verify_audit_chain(workflow.workflow_id)[0] is True


@pytest.mark.parametrize("how", ["queryset-update", "queryset-delete", "instance-save", "instance-delete"])
def test_trigger_refuses_the_orm(how):
    workflow = five_transitions()
    before = snapshot(workflow)
    rows = WorkflowTransition.objects.filter(workflow=workflow)
    transition = rows.get(seq=2)
    transition.reason = "rewritten"
    action = {
        "queryset-update": lambda: rows.update(reason="rewritten"),
        "queryset-delete": lambda: rows.filter(seq=5).delete(),
        "instance-save": lambda: transition.save(),
        "instance-delete": lambda: transition.delete(),
    }[how]
    refused_by_trigger(action)
    assert snapshot(workflow) == before


def test_trigger_error_types_per_backend():
    workflow = five_transitions()
    error = refused_by_trigger(lambda: WorkflowTransition.objects.filter(workflow=workflow).update(reason="x"))
    from django.db.utils import IntegrityError, ProgrammingError
    assert isinstance(error, (IntegrityError, ProgrammingError)), type(error)


def test_appending_is_still_allowed():
    workflow = five_transitions()
    services.fire_event(workflow.workflow_id, "vote", actor=Actor("eve"), params={"vote": "reject"})
    assert reload(workflow).version == 6


# --- a transition and its checkpoint: all or nothing -----------------------------------------

class Crash(RuntimeError):
    pass


def crash(*args, **kwargs):
    raise Crash("disk full between transition and checkpoint")


@pytest.fixture(params=["checkpoint-create", "checkpoint-hash"])
def crashing_checkpoints(request, monkeypatch):
    """Make the checkpoint write fail after the transition row has been written."""
    def arm():
        if request.param == "checkpoint-create":
            monkeypatch.setattr(WorkflowCheckpoint.objects, "create", crash)
        else:
            monkeypatch.setattr(services, "checkpoint_hash", crash)
    return arm


def test_failed_checkpoint_leaves_neither_transition_nor_state(crashing_checkpoints):
    workflow = five_transitions()
    before, counts = snapshot(workflow), db_counts()
    crashing_checkpoints()
    with pytest.raises(Crash):
        services.fire_event(workflow.workflow_id, "vote", actor=Actor("eve"), params={"vote": "approve"})
    assert snapshot(workflow) == before
    assert db_counts() == counts
    assert not WorkflowTransition.objects.filter(workflow=workflow, seq=6).exists()
    assert DurableWorkflowEngine().verify_audit_chain(workflow.workflow_id)[0] is True


def test_failed_checkpoint_on_start_creates_no_workflow(crashing_checkpoints):
    counts = db_counts()
    crashing_checkpoints()
    with pytest.raises(Crash):
        consensus(["ann", "ben"])
    assert db_counts() == counts


def test_failed_checkpoint_of_the_consequence_rolls_back_the_cause(monkeypatch):
    """The second approval moves the proposal on in the same transaction; if the proposal's
    checkpoint fails, the override's approval is undone too."""
    proposal = submit(HALT)
    override = services.request_override(proposal.workflow_id, actor=RISK, justification="launch")
    services.fire_event(override.workflow_id, "approve", actor=RISK, comment="ok")
    before_override, before_proposal, counts = snapshot(override), snapshot(proposal), db_counts()
    real_create = WorkflowCheckpoint.objects.create

    def create(**kwargs):
        if kwargs["workflow"].workflow_type == "proposal":
            crash()
        return real_create(**kwargs)

    monkeypatch.setattr(WorkflowCheckpoint.objects, "create", create)
    with pytest.raises(Crash):
        services.fire_event(override.workflow_id, "approve", actor=SECURITY, comment="ok")
    assert snapshot(override) == before_override and snapshot(proposal) == before_proposal
    assert db_counts() == counts


# --- concurrency -----------------------------------------------------------------------------

REVIEWERS = [f"reviewer-{i}" for i in range(8)]


@pytest.mark.django_db(transaction=True)
def test_eight_threads_voting_leave_one_linear_valid_chain(tmp_path):
    with concurrency_capable_database(tmp_path):
        eight_threads_vote()


def eight_threads_vote():
    vote = consensus(REVIEWERS, quorum=8, threshold=0.5)
    barrier = threading.Barrier(len(REVIEWERS))
    errors: list[BaseException] = []

    def cast(name, choice):
        try:
            barrier.wait(timeout=30)
            services.fire_event(vote.workflow_id, "vote", actor=Actor(name), params={"vote": choice})
        except BaseException as exc:  # noqa: BLE001 — reported below
            errors.append(exc)
        finally:
            connection.close()

    choices = {name: ("approve" if i % 2 == 0 else "reject") for i, name in enumerate(REVIEWERS)}
    threads = [threading.Thread(target=cast, args=item) for item in choices.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []

    row = reload(vote)
    assert (row.version, row.current_state) == (9, "approved")  # the 8th vote closes it: 4/8 >= 0.5
    assert row.state_data["votes"] == choices
    transitions = list(WorkflowTransition.objects.filter(workflow=row).order_by("seq"))
    assert [t.seq for t in transitions] == list(range(1, 10))
    assert sorted(t.triggered_by for t in transitions[1:]) == sorted(REVIEWERS)
    assert [t.to_state for t in transitions] == ["voting"] * 8 + ["approved"]
    for earlier, later in zip(transitions, transitions[1:]):
        assert later.prev_hash == earlier.hash and later.from_state == earlier.to_state
    assert list(WorkflowCheckpoint.objects.filter(workflow=row).order_by("seq").values_list("seq", flat=True)) == \
        list(range(1, 10))
    assert DurableWorkflowEngine().verify_audit_chain(row.workflow_id) == (
        True, "chain valid: 9 transitions, 9 checkpoints")
