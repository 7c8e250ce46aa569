"""Sealing alongside the rest of operations: key rotation re-encrypts sealed decisions and
they still verify; a backup restored into an empty database re-seals and verifies; eight
threads evaluating for one tenant while a sealer seals in a loop leave every decision
stored once and sealed once; and the sealer waits for a decision still being committed."""

from __future__ import annotations

import importlib
import threading

import pytest
from append_only_support import wipe_decisions, wipe_ledger_to_fresh
from django.conf import settings
from django.db import connection, transaction
from django.test import override_settings
from sealing_support import TABLE, Tenant, decide, decisions_line, make_tenant, pk_of, run

from governance.models import ApiKey, Customer, Decision, DecisionSeal, TelemetryEvent, UsageCounter
from governance.sealing import Tally, seal_decisions, verify_decision, verify_decisions
from workflows.backup import restore_backup, write_backup
from workflows.persistence.models import WorkflowCheckpoint, WorkflowInstance, WorkflowTransition

TRANSITIONS = importlib.import_module("workflows.migrations.0005_encrypt_pii")
TELEMETRY = importlib.import_module("governance.migrations.0009_append_only_telemetry")
KEY_A = settings.FERNET_KEYS[0]
KEY_B = "sealing-rotation-key-B"
HALT = {"novelty_score": 0.9}  # opens a review workflow


def all_verified() -> Tally:
    tally = Tally()
    assert [f.message for f in verify_decisions(tally)] == []
    return tally


def raw_summaries() -> dict[int, bytes]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, proposal_summary FROM {TABLE}")
        return {pk: bytes(token) for pk, token in cursor.fetchall()}


# --- key rotation ----------------------------------------------------------------------------------

@pytest.mark.django_db
def test_key_rotation_rewrites_sealed_decisions_and_they_still_verify(tenant):
    with override_settings(FERNET_KEYS=[KEY_A]):
        ids = decide(tenant, 4) + decide(tenant, 1, **HALT)
        seal_decisions(max_per_block=3)
        unsealed = decide(tenant, 2)  # rotated before they are sealed
        tokens, hashes = raw_summaries(), dict(Decision.objects.values_list("pk", "content_hash"))

    with override_settings(FERNET_KEYS=[KEY_B, KEY_A]):
        out, _ = run("aegis_rotate_keys", batch_size=2)
        assert "governance.Decision (proposal_summary, agent_id, session_id, metadata): 7 rows" in out
        run("aegis_rotate_keys", check=True)

    with override_settings(FERNET_KEYS=[KEY_B]):  # the old key gone: everything reads under B alone
        after = raw_summaries()
        assert set(after) == set(tokens) and all(after[pk] != token for pk, token in tokens.items())
        assert dict(Decision.objects.values_list("pk", "content_hash")) == hashes
        tally = all_verified()
        assert (tally.checked, tally.unsealed) == (7, 2)
        assert seal_decisions() == 2
        assert {verify_decision(i).state for i in ids + unsealed} == {"sealed-valid"}
        out, err = run("aegis_verify_chain", all=True)
        assert err == "" and decisions_line(out).endswith(": 0 unsealed, 0 broken.")


# --- backup and restore ----------------------------------------------------------------------------

def _triggers(module) -> tuple[list[str], list[str]]:
    """(install, remove) statements of an append-only migration for this database."""
    if connection.vendor == "sqlite":
        return module.SQLITE_FORWARD, module.SQLITE_BACKWARD
    if hasattr(module, "TRIGGERS"):  # governance 0009 keeps them per vendor
        return module.TRIGGERS["postgresql"]
    return module.POSTGRES_FORWARD, module.POSTGRES_BACKWARD


def empty_database() -> None:
    """What a restore into a new database starts from: no tenant, decision, seal block,
    workflow, telemetry event or ledger entry but configuration v1's (tiers and configuration
    versions come from migrations)."""
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {UsageCounter._meta.db_table}")
    wipe_decisions()
    wipe_ledger_to_fresh()
    for module, tables in ((TRANSITIONS, [WorkflowCheckpoint, WorkflowTransition, WorkflowInstance]),
                           (TELEMETRY, [TelemetryEvent])):
        install, remove = _triggers(module)
        with connection.cursor() as cursor:
            for statement in remove:
                cursor.execute(statement)
            for model in tables:
                cursor.execute(f"DELETE FROM {model._meta.db_table}")
            for statement in install:
                cursor.execute(statement)
    with connection.cursor() as cursor:
        for model in (ApiKey, Customer):
            cursor.execute(f"DELETE FROM {model._meta.db_table}")
    assert not (Decision.objects.exists() or DecisionSeal.objects.exists() or WorkflowInstance.objects.exists())


@pytest.mark.django_db
def refetched(tenant: Tenant) -> Tenant:
    """The tenant as restored (under new database ids)."""
    return Tenant(Customer.objects.get(customer_id=tenant.customer.customer_id),
                  ApiKey.objects.get(key_id=tenant.key.key_id), tenant.plaintext)


def test_a_backup_restored_into_an_empty_database_keeps_its_seal_blocks_and_verifies(tenant, tmp_path):
    ids = decide(tenant, 5) + decide(tenant, 1, **HALT)
    seal_decisions(max_per_block=4)
    hashes = dict((str(d), h) for d, h in Decision.objects.values_list("decision_id", "content_hash"))
    blocks = list(DecisionSeal.objects.values_list("seq", "first_pk", "last_pk", "hash"))
    path = tmp_path / "backup.json.gz"
    write_backup(path)

    empty_database()
    inserted = restore_backup(path)

    assert (inserted["decisions"], inserted["decision_seals"]) == (6, 2)
    assert dict((str(d), h) for d, h in Decision.objects.values_list("decision_id", "content_hash")) == hashes
    # The blocks come back as they were, and the decisions under the pks they seal.
    assert list(DecisionSeal.objects.values_list("seq", "first_pk", "last_pk", "hash")) == blocks
    tally = all_verified()
    assert (tally.blocks, tally.checked, tally.unsealed, tally.broken) == (2, 6, 0, 0)
    assert {verify_decision(i).state for i in ids} == {"sealed-valid"}
    assert seal_decisions() == 0
    assert decide(refetched(tenant), 1) and seal_decisions() == 1  # after them
    out, err = run("aegis_verify_chain", all=True)
    assert err == "" and "1 workflow(s) checked, 0 broken." in out


@pytest.mark.django_db
def test_decisions_restored_beside_sealed_ones_are_sealed_after_them(tenant, tmp_path):
    restored = decide(tenant, 3)
    path = tmp_path / "backup.json.gz"
    write_backup(path)
    empty_database()
    present = decide(make_tenant("Already Here"), 2)
    seal_decisions()

    assert restore_backup(path)["decisions"] == 3
    assert min(map(pk_of, restored)) > max(map(pk_of, present))  # new pks, after the sealed range
    assert {verify_decision(i).state for i in restored} == {"unsealed"}
    assert seal_decisions() == 3
    assert {verify_decision(i).state for i in restored + present} == {"sealed-valid"}
    assert restore_backup(path)["decisions"] == 0  # again: present identically, skipped
    assert all_verified().checked == 5


# --- concurrency -----------------------------------------------------------------------------------

THREADS, PER_THREAD = 8, 12


def skip_without_real_concurrency():
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.skip("an in-memory SQLite database fails contending writers at once (wf_support explains)")


@pytest.mark.django_db(transaction=True)
def test_eight_threads_evaluating_while_sealers_seal_leave_every_decision_sealed_once():
    """Two sealers, so they also contend with each other (the periodic task and the
    command, say)."""
    skip_without_real_concurrency()
    tenant = make_tenant("Busy Tenant")
    barrier = threading.Barrier(THREADS + 2)
    done = threading.Event()
    made: list[str] = []
    errors: list[BaseException] = []
    sealed_meanwhile: list[int] = []

    def evaluate():
        try:
            barrier.wait(timeout=30)
            for _ in range(PER_THREAD):
                made.extend(decide(tenant))
        except BaseException as exc:  # noqa: BLE001 — reported below
            errors.append(exc)
        finally:
            connection.close()

    def seal():
        try:
            barrier.wait(timeout=30)
            while not done.is_set():
                sealed_meanwhile.append(seal_decisions(max_per_block=5))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    evaluators = [threading.Thread(target=evaluate) for _ in range(THREADS)]
    sealers = [threading.Thread(target=seal) for _ in range(2)]
    for thread in (*evaluators, *sealers):
        thread.start()
    for thread in evaluators:
        thread.join(timeout=180)
    done.set()
    for thread in sealers:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in (*evaluators, *sealers)) and errors == []

    total = THREADS * PER_THREAD
    stored = [str(d) for d in Decision.objects.filter(customer=tenant.customer).values_list("decision_id", flat=True)]
    assert len(made) == len(set(made)) == total and sorted(stored) == sorted(made)
    assert sum(sealed_meanwhile) > 0  # the sealers really ran between the evaluations
    seal_decisions()
    entries = [e for block in DecisionSeal.objects.order_by("seq") for e in block.entries]
    assert sorted(e[1] for e in entries) == sorted(made)  # every decision sealed, exactly once
    assert [e[0] for e in entries] == sorted(e[0] for e in entries)
    tally = all_verified()
    assert (tally.checked, tally.unsealed) == (total, 0)


@pytest.mark.django_db(transaction=True)
def test_the_sealer_waits_for_a_decision_still_being_committed():
    """Without waiting, a decision whose pk was drawn before the seal but committed after it
    would lie inside a sealed range without being in it (and be reported as inserted)."""
    skip_without_real_concurrency()
    tenant, other = make_tenant("Slow Tenant"), make_tenant("Quick Tenant")
    [committed] = decide(tenant)
    inserted, release = threading.Event(), threading.Event()
    held: list[str] = []
    sealed: list[int] = []

    def hold():
        with transaction.atomic():
            held.extend(decide(tenant))
            inserted.set()
            release.wait(timeout=30)

    def in_thread(work):
        def run_():
            try:
                work()
            finally:
                connection.close()
        return threading.Thread(target=run_)

    holder = in_thread(hold)
    holder.start()
    assert inserted.wait(timeout=30)
    later: list[str] = []
    if connection.vendor == "postgresql":  # a decision with a higher pk commits first
        quick = in_thread(lambda: later.extend(decide(other)))
        quick.start()
        quick.join(timeout=30)
        assert later and pk_of(later[0]) > pk_of(committed)
    sealer = in_thread(lambda: sealed.append(seal_decisions()))
    sealer.start()
    sealer.join(timeout=1.5)
    try:
        assert sealer.is_alive(), "the sealer did not wait for the decision in flight"
    finally:
        release.set()
        holder.join(timeout=30)
        sealer.join(timeout=30)

    assert sealed == [2 + len(later)]
    [block] = DecisionSeal.objects.all()
    assert [e[1] for e in block.entries] == sorted([committed, *held, *later], key=pk_of)
    all_verified()
