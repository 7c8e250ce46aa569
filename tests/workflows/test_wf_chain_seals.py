"""Chain seals (issue 15, item 6): a verification run seals each chain it found valid, and
the next nightly run accepts a chain whose stored bytes still match its seal without
decrypting it again. Every change to those bytes, and every forged, copied or stale seal,
sends the chain back to the full check, so each tampering is reported exactly as it is
without seals; a change of key retires every seal."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from governance.models import TelemetryEvent
from workflows import operations, services
from workflows.machines import Actor
from workflows.persistence import durable
from workflows.persistence.durable import DurableWorkflowEngine
from workflows.persistence.models import ChainSeal, VerificationDepth, WorkflowInstance
from wf_support import concurrency_capable_database, consensus, drop_append_only_triggers

C = "workflows_workflowcheckpoint"
T = "workflows_workflowtransition"
W = "workflows_workflowinstance"
S = "workflows_chainseal"
REVIEWERS = ["ann", "ben", "cat", "dan"]


def voted_consensus(votes: int = 3) -> WorkflowInstance:
    """Seqs 1..votes+1: started, then the votes."""
    vote = consensus(REVIEWERS)
    for name in REVIEWERS[:votes]:
        services.fire_event(vote.workflow_id, "vote", actor=Actor(name), params={"vote": "approve"})
    return WorkflowInstance.objects.get(pk=vote.pk)


def sql(statement, params=()):
    with connection.cursor() as cursor:
        cursor.execute(statement, list(params))


def nightly() -> list:
    """The reports of the nightly depth with sealing, as the verification runs make them."""
    return list(DurableWorkflowEngine(depth=VerificationDepth.NEWEST, seal=True).verify_all())


def unsealed() -> list:
    """The same depth without seals: what every report must equal."""
    return list(DurableWorkflowEngine(depth=VerificationDepth.NEWEST).verify_all())


def without_seal_flag(reports) -> list:
    return [dataclasses.replace(report, by_seal=False) for report in reports]


@pytest.fixture
def sealed():
    """Three workflows, verified and sealed once."""
    workflows = [voted_consensus() for _ in range(3)]
    first = nightly()
    assert [r.is_valid for r in first] == [True] * 3 and not any(r.by_seal for r in first)
    assert ChainSeal.objects.count() == 3
    return workflows


@pytest.mark.django_db
def test_an_unchanged_chain_is_accepted_by_its_seal_with_the_report_the_full_check_gives(sealed):
    again = nightly()
    assert [r.by_seal for r in again] == [True] * 3
    assert without_seal_flag(again) == unsealed()
    assert again[0].message == "chain valid: 4 transitions, newest checkpoint (older ones not re-hashed)"


def swap_state_data(workflows):
    """Another workflow's ciphertext: it decrypts, but to the other one's state."""
    sql(f"UPDATE {W} SET state_data = (SELECT state_data FROM {W} WHERE id = %s) WHERE id = %s",
        [workflows[0].pk, workflows[1].pk])


def edit_transition_hash(workflows):
    drop_append_only_triggers()
    sql(f"UPDATE {T} SET hash = %s WHERE workflow_id = %s AND seq = 2", ["0" * 64, workflows[1].pk])


def copy_transition_actor(workflows):
    """Seq 2's ciphertext (ann's vote) as seq 3's actor: a valid token of the wrong plaintext."""
    drop_append_only_triggers()
    sql(f"UPDATE {T} SET triggered_by = (SELECT triggered_by FROM {T} WHERE workflow_id = %s AND seq = 2) "
        f"WHERE workflow_id = %s AND seq = 3", [workflows[1].pk, workflows[1].pk])


def edit_newest_checkpoint(workflows):
    sql(f"UPDATE {C} SET hash = %s WHERE workflow_id = %s AND seq = 4", ["0" * 64, workflows[1].pk])


def delete_last_transition(workflows):
    drop_append_only_triggers()
    sql(f"DELETE FROM {C} WHERE workflow_id = %s AND seq = 4", [workflows[1].pk])
    sql(f"DELETE FROM {T} WHERE workflow_id = %s AND seq = 4", [workflows[1].pk])


def change_state(workflows):
    sql(f"UPDATE {W} SET current_state = 'forged' WHERE id = %s", [workflows[1].pk])


@pytest.mark.django_db
@pytest.mark.parametrize("tamper", [swap_state_data, edit_transition_hash, copy_transition_actor,
                                    edit_newest_checkpoint, delete_last_transition, change_state])
def test_tampering_after_the_seal_is_reported_exactly_as_without_seals(sealed, tamper):
    tamper(sealed)
    reports = nightly()
    assert [r.is_valid for r in reports] == [True, False, True]
    assert [r.by_seal for r in reports] == [True, False, True]
    assert without_seal_flag(reports) == unsealed()
    assert reports[1].message.startswith("seq ")
    assert ChainSeal.objects.count() == 3  # the broken chain keeps its old seal, which no longer matches
    assert not nightly()[1].is_valid


def copy_a_seal(workflows):
    """The valid seal of another workflow's chain."""
    sql(f"UPDATE {S} SET digest = (SELECT digest FROM {S} WHERE workflow_pk = %s) WHERE workflow_pk = %s",
        [workflows[0].pk, workflows[1].pk])


def seal_with_another_key(workflows):
    """What an attacker without AEGIS_ANCHOR_KEY can compute: the chain's bytes MACed under a key of their own."""
    stored, _ = durable._RangeReader(VerificationDepth.NEWEST).read(workflows[1].pk - 1, workflows[1].pk, seals=False)
    digest = stored[0].digest(hashlib.sha256(b"guessed").digest())
    sql(f"UPDATE {S} SET digest = %s WHERE workflow_pk = %s", [digest, workflows[1].pk])


@pytest.mark.django_db
@pytest.mark.parametrize("forge", [copy_a_seal, seal_with_another_key])
def test_a_forged_or_copied_seal_does_not_cover_a_tampered_chain(sealed, forge):
    edit_newest_checkpoint(sealed)
    forge(sealed)
    reports = nightly()
    assert [r.is_valid for r in reports] == [True, False, True]
    assert reports[1].message == "seq 4: checkpoint mismatch (hash of its data differs)"


@pytest.mark.django_db
def test_new_transitions_send_the_chain_to_the_full_check_and_earn_a_new_seal(sealed):
    services.fire_event(sealed[2].workflow_id, "vote", actor=Actor(REVIEWERS[3]), params={"vote": "approve"})
    old = ChainSeal.objects.get(pk=sealed[2].pk).digest
    reports = nightly()
    assert [(r.is_valid, r.by_seal) for r in reports] == [(True, True), (True, True), (True, False)]
    assert ChainSeal.objects.get(pk=sealed[2].pk).digest != old
    assert [r.by_seal for r in nightly()] == [True] * 3


@pytest.mark.django_db
def test_the_full_depth_never_accepts_a_seal_and_finds_an_older_checkpoint(sealed):
    sql(f"UPDATE {C} SET hash = %s WHERE workflow_id = %s AND seq = 2", ["0" * 64, sealed[0].pk])
    full = list(DurableWorkflowEngine(depth=VerificationDepth.FULL, seal=True).verify_all())
    assert not any(r.by_seal for r in full)
    assert full[0].message == "seq 2: checkpoint mismatch (hash of its data differs)"


@pytest.mark.django_db
@pytest.mark.parametrize("setting", ["AEGIS_ANCHOR_KEY", "FERNET_KEYS"])
def test_another_key_retires_every_seal(sealed, settings, setting):
    if setting == "AEGIS_ANCHOR_KEY":
        settings.AEGIS_ANCHOR_KEY = "another-anchor-key-0123456789"
    else:  # a new primary key before rotation: the old one still decrypts
        settings.FERNET_KEYS = [Fernet.generate_key().decode(), *settings.FERNET_KEYS]
    reports = nightly()
    assert [(r.is_valid, r.by_seal) for r in reports] == [(True, False)] * 3
    assert [r.by_seal for r in nightly()] == [True] * 3


@pytest.mark.django_db
def test_a_key_removed_from_fernet_keys_is_reported_even_for_sealed_chains(sealed, settings):
    settings.FERNET_KEYS = [Fernet.generate_key().decode()]
    reports = nightly()
    assert [r.is_valid for r in reports] == [False] * 3
    assert "cannot decrypt" in reports[0].message


@pytest.mark.django_db
def test_one_workflows_report_neither_reads_nor_writes_seals(django_assert_num_queries):
    """Pages show one chain's report: a full check, with no query for seals."""
    workflow = voted_consensus()
    engine = DurableWorkflowEngine()
    engine.report(workflow.workflow_id)
    with django_assert_num_queries(4):  # the workflow's pk, then its row, transitions and checkpoints
        assert engine.report(workflow.workflow_id).is_valid
    assert not ChainSeal.objects.exists()


@pytest.mark.django_db
def test_without_an_anchor_key_nothing_is_sealed(settings):
    settings.AEGIS_ANCHOR_KEY = ""
    voted_consensus()
    assert [(r.is_valid, r.by_seal) for r in nightly() + nightly()] == [(True, False)] * 2
    assert not ChainSeal.objects.exists()


@pytest.mark.django_db
def test_the_nightly_run_and_the_command_say_how_many_chains_their_seals_covered(sealed, capsys):
    run = operations.verify_all_chains()
    assert run.broken == 0
    event = TelemetryEvent.objects.filter(name="audit.verified", subject=str(run.pk)).get()
    assert event.data["chains_unchanged_since_sealed"] == 3
    call_command("aegis_verify_chain", "--all", "--processes", "1")
    assert "3 workflow(s) checked, 0 broken (3 unchanged since an earlier run verified and sealed them)." in (
        capsys.readouterr().out)


@pytest.mark.django_db(transaction=True)
def test_worker_processes_seal_and_accept_seals_like_one_process(tmp_path, monkeypatch):
    monkeypatch.setattr(durable, "STREAM_CHUNK", 1)  # four chunks over two workers
    with concurrency_capable_database(tmp_path):
        workflows = [voted_consensus() for _ in range(4)]
        parallel = DurableWorkflowEngine(depth=VerificationDepth.NEWEST, processes=2, seal=True)
        assert parallel._pool_refusal() is None, "the worker processes were not used"
        first = list(parallel.verify_all())
        assert ChainSeal.objects.count() == 4
        again = list(parallel.verify_all())
        assert [(r.is_valid, r.by_seal) for r in first] == [(True, False)] * 4
        assert [(r.is_valid, r.by_seal) for r in again] == [(True, True)] * 4
        assert [r.workflow_id for r in again] == [str(w.workflow_id) for w in workflows]
