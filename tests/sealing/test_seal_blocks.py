"""Sealing: blocks of at most max_per_block decisions, hash-chained, each in its own
transaction; the command, the periodic task and its schedule; and a broken block chain
(entries, links, a missing block, removed newest blocks) found and named by its seq."""

from __future__ import annotations

import pytest
from append_only_support import drop_decision_triggers
from django.db import connection
from django_celery_beat.models import PeriodicTask
from sealing_support import (SEAL_TABLE, decide, pk_of, run, run_refused, sql, verify_over_api)

from aegis_site.celery import app as celery_app
from governance import sealing
from governance import tasks as governance_tasks
from governance.models import Decision, DecisionSeal, TelemetryEvent
from governance.sealing import (GENESIS_HASH, Tally, block_hash, entries_digest, seal_decisions, verify_decision,
                                verify_decisions)
from workflows import operations

pytestmark = pytest.mark.django_db


def findings() -> list[tuple[str | None, int | None, str]]:
    return [(f.decision_id, f.block, f.reason) for f in verify_decisions()]


def set_seal_column(seq: int, column: str, value) -> None:
    sql(f"UPDATE {SEAL_TABLE} SET {column} = %s WHERE seq = %s",
        [DecisionSeal._meta.get_field(column).get_db_prep_save(value, connection), seq])


# --- sealing ---------------------------------------------------------------------------------------

def test_blocks_hold_at_most_max_per_block_and_chain(tenant):
    ids = decide(tenant, 7)

    assert seal_decisions(max_per_block=3) == 7

    blocks = list(DecisionSeal.objects.order_by("seq"))
    assert [(b.seq, b.count) for b in blocks] == [(1, 3), (2, 3), (3, 1)]
    assert [e[1] for b in blocks for e in b.entries] == ids
    assert blocks[0].prev_hash == GENESIS_HASH and blocks[0].first_pk == 1
    for before, after in zip(blocks, blocks[1:]):
        assert after.prev_hash == before.hash and after.first_pk == before.last_pk + 1
    for block in blocks:
        assert block.last_pk == block.entries[-1][0]
        assert block.entries == [[pk_of(i), i, Decision.objects.get(decision_id=i).content_hash]
                                 for i in (e[1] for e in block.entries)]
        assert block.entries_hash == entries_digest(block.entries)
        assert block.hash == block_hash(seq=block.seq, first_pk=block.first_pk, last_pk=block.last_pk,
                                        count=block.count, entries_hash=block.entries_hash,
                                        prev_hash=block.prev_hash, created_at=block.created_at)
    assert findings() == []


def test_sealing_is_idempotent_and_continues_where_it_stopped(tenant):
    decide(tenant, 2)
    assert seal_decisions() == 2
    assert seal_decisions() == 0
    later = decide(tenant, 3)
    assert seal_decisions() == 3
    newest = DecisionSeal.objects.get(seq=2)
    assert [e[1] for e in newest.entries] == later
    assert DecisionSeal.objects.count() == 2


def test_each_block_is_recorded_in_telemetry_in_its_transaction(tenant):
    decide(tenant, 4)
    seal_decisions(max_per_block=3)
    events = list(TelemetryEvent.objects.filter(name="decisions.sealed").order_by("occurred_at", "id"))
    blocks = list(DecisionSeal.objects.order_by("seq"))
    assert [e.data for e in events] == [{"seq": b.seq, "first_pk": b.first_pk, "last_pk": b.last_pk,
                                         "count": b.count, "hash": b.hash} for b in blocks]
    assert {e.subject for e in events} == {"block 1", "block 2"} and {e.actor for e in events} == {"aegis-sealer"}


def test_a_block_size_below_one_is_refused(tenant):
    with pytest.raises(ValueError, match="at least 1"):
        seal_decisions(max_per_block=0)
    error, _, _ = run_refused("aegis_seal_decisions", block_size=0)
    assert "--block-size must be a positive integer" in str(error)


def test_the_command_prints_how_many_it_sealed_and_the_newest_hash(tenant):
    out, _ = run("aegis_seal_decisions")
    assert out.strip() == "Sealed 0 decision(s); no block yet."
    decide(tenant, 3)
    out, _ = run("aegis_seal_decisions", block_size=2)
    newest = DecisionSeal.objects.get(seq=2)
    assert out.strip() == f"Sealed 3 decision(s); newest block 2, hash {newest.hash}."


def test_the_periodic_task_seals_and_is_scheduled_every_five_minutes(tenant):
    decide(tenant, 2)
    assert governance_tasks.seal_decisions.delay().get() == 2  # eager without Redis, like every task
    assert DecisionSeal.objects.get().count == 2
    schedule = PeriodicTask.objects.get(name="Decision sealing")
    assert schedule.task == "aegis.decisions.seal" and schedule.enabled
    assert (schedule.interval.every, schedule.interval.period) == (5, "minutes")
    celery_app.loader.import_default_modules()
    assert "aegis.decisions.seal" in celery_app.tasks


def test_verification_streams_in_batches(tenant, monkeypatch):
    """Across block and batch boundaries, a deletion and a change are each found once."""
    monkeypatch.setattr(sealing, "READ_BATCH", 2)
    ids = decide(tenant, 9)
    seal_decisions(max_per_block=4)
    later = decide(tenant, 3)
    drop_decision_triggers()
    sql("DELETE FROM governance_decision WHERE id = %s", [pk_of(ids[4])])
    sql("UPDATE governance_decision SET risk_proposed = 0.99 WHERE id = %s", [pk_of(ids[5])])
    sql("UPDATE governance_decision SET risk_proposed = 0.99 WHERE id = %s", [pk_of(later[1])])

    tally = Tally()
    found = [(f.decision_id, f.block) for f in verify_decisions(tally)]

    assert found == [(ids[4], 2), (ids[5], 2), (later[1], None)]
    assert (tally.blocks, tally.checked, tally.unsealed, tally.broken) == (3, 11, 2, 3)
    assert (tally.head_seq, tally.head_hash) == (3, DecisionSeal.objects.get(seq=3).hash)


# --- a broken block chain --------------------------------------------------------------------------

@pytest.fixture
def three_blocks(tenant):
    ids = decide(tenant, 6)
    seal_decisions(max_per_block=2)
    drop_decision_triggers()
    return ids


def test_changed_entries_break_the_block(three_blocks, staff_api):
    block = DecisionSeal.objects.get(seq=2)
    entries = [list(e) for e in block.entries]
    entries[0][2] = "f" * 64
    set_seal_column(2, "entries", entries)

    assert findings()[0] == (None, 2, "entries_hash mismatch (its entries were changed)")
    error, _, err = run_refused("aegis_verify_chain", all=True)
    assert err.splitlines()[0] == "BROKEN seal block 2: entries_hash mismatch (its entries were changed)"
    body = verify_over_api(staff_api, three_blocks[2]).json()
    assert body["state"] == "broken" and body["block"] == 2
    assert body["message"] == "its seal block 2 is broken: entries_hash mismatch (its entries were changed)"
    assert verify_over_api(staff_api, three_blocks[0]).json()["state"] == "sealed-valid"
    run_ = operations.verify_all_chains()
    assert {"decision_id": None, "block": 2, "reason": "entries_hash mismatch (its entries were changed)",
            "message": "seal block 2: entries_hash mismatch (its entries were changed)"} in run_.failures


def test_a_block_rewritten_consistently_breaks_the_link_of_the_next(three_blocks):
    """The attacker changes a decision and rewrites its entry, entries_hash and block hash:
    the next block's prev_hash no longer matches."""
    sql("UPDATE governance_decision SET risk_proposed = 0.99 WHERE id = %s", [pk_of(three_blocks[2])])
    row = Decision.objects.select_related("customer", "api_key").get(decision_id=three_blocks[2])
    block = DecisionSeal.objects.get(seq=2)
    entries = [list(e) for e in block.entries]
    entries[0][2] = sealing.decision_digest(row)
    digest = entries_digest(entries)
    set_seal_column(2, "entries", entries)
    set_seal_column(2, "entries_hash", digest)
    set_seal_column(2, "hash", block_hash(seq=2, first_pk=block.first_pk, last_pk=block.last_pk, count=block.count,
                                          entries_hash=digest, prev_hash=block.prev_hash,
                                          created_at=block.created_at))

    assert (None, 3, "broken link: prev_hash does not match the hash of block 2") in findings()


@pytest.mark.parametrize("column, value, why", [
    ("prev_hash", "1" * 64, "broken link: prev_hash does not match the hash of block 1"),
    ("hash", "2" * 64, "hash mismatch"),
    ("count", 5, "count 5 but 2 entries"),
    ("first_pk", 0, "its range starts at pk 0, not right after block 1"),
])
def test_edited_block_fields_are_named(three_blocks, column, value, why):
    set_seal_column(2, column, value)
    problems = [reason for _, seq, reason in findings() if seq == 2]
    assert problems and problems[0].startswith(why), problems


def test_a_missing_block_in_the_middle_is_a_gap(three_blocks):
    sql(f"DELETE FROM {SEAL_TABLE} WHERE seq = 2")
    found = findings()
    assert found[0] == (None, 3, "gap in seq: block 2 is missing (the next stored block is 3)")
    # Its decisions are no longer covered by any stored block: they are reported too.
    assert {three_blocks[2], three_blocks[3]} <= {decision_id for decision_id, _, _ in found}
    assert verify_decision(three_blocks[4]).message == "its seal block 3 is broken: gap in seq: block 2 is missing"


def test_removed_newest_blocks_are_found_through_telemetry(three_blocks):
    sql(f"DELETE FROM {SEAL_TABLE} WHERE seq >= 2")
    found = findings()
    assert found[-1] == (None, 3, "missing: the sealer recorded block 3 (telemetry decisions.sealed) but the newest "
                                  "stored block is 1: the newest blocks were removed")
    # Their decisions look unsealed (their own digests still match): a truncation alone
    # is visible only through that record (docs/decisions.md, "Sealed decisions").
    assert [r.state for r in map(verify_decision, three_blocks[2:])] == ["unsealed"] * 4


def test_a_rewritten_newest_block_differs_from_its_recorded_hash(three_blocks):
    block = DecisionSeal.objects.get(seq=3)
    sql("UPDATE governance_decision SET risk_proposed = 0.99 WHERE id = %s", [pk_of(three_blocks[5])])
    row = Decision.objects.select_related("customer", "api_key").get(decision_id=three_blocks[5])
    entries = [list(e) for e in block.entries]
    entries[1][2] = sealing.decision_digest(row)
    sql("UPDATE governance_decision SET content_hash = %s WHERE id = %s", [entries[1][2], row.pk])
    digest = entries_digest(entries)
    set_seal_column(3, "entries", entries)
    set_seal_column(3, "entries_hash", digest)
    set_seal_column(3, "hash", block_hash(seq=3, first_pk=block.first_pk, last_pk=block.last_pk, count=block.count,
                                          entries_hash=digest, prev_hash=block.prev_hash,
                                          created_at=block.created_at))

    assert findings() == [(None, 3, "differs from the hash the sealer recorded for it (telemetry decisions.sealed)")]


# --- where the findings are shown ------------------------------------------------------------------

def test_staff_pages_show_a_broken_decision_and_metrics_count_the_run(three_blocks, staff_api):
    from governance.metrics import _STORED_WORK
    from prometheus_client import generate_latest

    sql("UPDATE governance_decision SET risk_proposed = 0.99 WHERE id = %s", [pk_of(three_blocks[1])])
    run_ = operations.verify_all_chains()

    assert not run_.ok and run_.broken == 1 and run_.checked == 6 + 1  # and configuration v1
    page = staff_api.get("/workflows/").content.decode()
    assert 'id="audit-alert"' in page and three_blocks[1] in page
    metrics = generate_latest(_STORED_WORK).decode()
    assert 'aegis_audit_verifications_total{result="broken"} 1.0' in metrics


def test_preflight_fails_on_a_broken_decision(three_blocks, tmp_path):
    sql("UPDATE governance_decision SET status = 'halt' WHERE id = %s", [pk_of(three_blocks[3])])
    error, out, _ = run_refused("aegis_preflight", backup=str(tmp_path / "pre.json"))
    assert error.returncode == 1
    assert f"       broken decision {three_blocks[3]}: changed" in out
    assert "[FAIL] decisions: 6 verified in 3 seal block(s), 0 unsealed, 1 broken" in out


def test_preflight_passes_the_decisions_of_a_clean_database(three_blocks, tmp_path):
    out, _ = run("aegis_preflight", backup=str(tmp_path / "pre.json"))
    assert "[OK  ] decisions: 6 verified in 3 seal block(s), 0 unsealed, 0 broken" in out
