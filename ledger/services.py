"""Recording in the ledger (the only writer of LedgerEntry rows besides restore).

`record` runs inside the caller's transaction, so an object and its entry commit or roll
back together. On PostgreSQL the entry is chained (seq, prev_hash, hash) just after that
commit, in a short transaction of its own: chaining there instead of in the caller's
transaction keeps a ledger-wide lock out of every business transaction, so no caller waits
on another's commit and no lock order can deadlock. On SQLite the caller's transaction
already holds the database's only write lock, so the entry is chained in it: nobody else can
interleave, and a second commit (a second fsync) per request is saved: entries are inserted
in their place unless older ones are still waiting. An entry committed
but not yet chained (the process died in between) is chained by the next `chain_pending`,
which verification and backups call first.
"""

from __future__ import annotations

from typing import Iterable

from django.db import connection, transaction

from .chain import (CONFIGURATION_VERSION, DECISION_SEAL, GENESIS_HASH, TRANSITION, WORKFLOW, configuration_digest,
                    describe, entry_hash, number_ref, transition_ref, workflow_digest, workflow_ref)
from .models import LedgerEntry

CHAIN_BATCH = 1000
# pg_advisory_xact_lock key of the chaining step: "AEGISLDG" read as an integer.
CHAIN_LOCK = 0x4145474953_4C4447


def record(kind: str, ref: str, digest: str) -> None:
    record_many([(kind, ref, digest)])


def record_many(items: Iterable[tuple[str, str, str]]) -> None:
    """Record (kind, ref, digest) items in the surrounding transaction."""
    rows = [LedgerEntry(kind=kind, ref=ref, digest=digest) for kind, ref, digest in items]
    if not rows:
        return
    if connection.vendor == "sqlite" and connection.in_atomic_block:
        waiting, *head_now = _waiting_and_head()
        if not waiting:  # inserted in their place: nothing is waiting before them
            _link(rows, *head_now)
            LedgerEntry.objects.bulk_create(rows)
            return
    LedgerEntry.objects.bulk_create(rows)
    transaction.on_commit(chain_pending, robust=True)


class LedgerConflict(ValueError):
    """An object saved again under the ref of a recorded one, with other contents."""


def record_again(items: Iterable[tuple[str, str, str]]) -> None:
    """Record items that may have been recorded before (a workflow saved back from an
    export, as the rollback procedure does): the same entry again is skipped, another one
    under the same ref refused."""
    items = list(items)
    known = dict(((kind, ref), digest) for kind, ref, digest in LedgerEntry.objects.filter(
        ref__in=[ref for _, ref, _ in items]).values_list("kind", "ref", "digest"))
    for kind, ref, digest in items:
        if known.get((kind, ref), digest) != digest:
            raise LedgerConflict(f"{describe(kind, ref)} differs from the one the ledger recorded")
    record_many(item for item in items if (item[0], item[1]) not in known)


def workflow_item(workflow) -> tuple[str, str, str]:
    """A workflow's creation (its transitions have entries of their own)."""
    customer = workflow.customer.customer_id if workflow.customer_id else None
    return (WORKFLOW, workflow_ref(workflow.workflow_id),
            workflow_digest(workflow_id=workflow.workflow_id, workflow_type=workflow.workflow_type,
                            created_at=workflow.created_at, customer_id=customer))


def transition_items(workflow_id, transitions) -> list[tuple[str, str, str]]:
    """Transitions (objects or dicts with seq and hash) of workflow `workflow_id`."""
    return [(TRANSITION, transition_ref(workflow_id, _get(t, "seq")), _get(t, "hash")) for t in transitions]


def _get(item, name):
    return item[name] if isinstance(item, dict) else getattr(item, name)


def record_configuration_version(version) -> None:
    record(CONFIGURATION_VERSION, number_ref(version.version),
           configuration_digest(version=version.version, content_hash=version.content_hash, source=version.source,
                                source_ref=version.source_ref))


def record_decision_seal(block) -> None:
    record(DECISION_SEAL, number_ref(block.seq), block.hash)


def _lock_chain() -> None:
    """Chaining steps queue here on PostgreSQL; on SQLite the transaction's BEGIN IMMEDIATE
    already holds the only write lock."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK])


def chained_head() -> tuple[int, str]:
    """(seq, hash) of the newest chained entry; (0, GENESIS_HASH) for an empty ledger."""
    return (LedgerEntry.objects.exclude(seq=None).order_by("-seq").values_list("seq", "hash").first()
            or (0, GENESIS_HASH))


def _waiting_and_head() -> tuple[bool, int, str]:
    """Whether unchained entries wait, and the chained head, in one statement (this runs in
    every recording transaction on SQLite)."""
    table = connection.ops.quote_name(LedgerEntry._meta.db_table)
    newest = f"FROM {table} WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {table} WHERE seq IS NULL), (SELECT seq {newest}), "
                       f"(SELECT hash {newest})")
        waiting, seq, digest = cursor.fetchone()
    return bool(waiting), seq or 0, digest or GENESIS_HASH


def chain_pending() -> int:
    """Give every unchained entry its place after the newest chained one, in the order they
    were written; returns how many were chained."""
    chained = 0
    # A plain read first: a transaction that recorded several things queues one call per
    # record, and all but the first find nothing left; they need not queue for the lock.
    while _unchained().exists():
        with transaction.atomic():
            _lock_chain()
            pending = list(_unchained().order_by("id")[:CHAIN_BATCH])
            if not pending:
                return chained
            _link(pending, *chained_head())
            with connection.cursor() as cursor:
                cursor.executemany(
                    f"UPDATE {connection.ops.quote_name(LedgerEntry._meta.db_table)} "
                    "SET seq = %s, prev_hash = %s, hash = %s WHERE id = %s",
                    [(entry.seq, entry.prev_hash, entry.hash, entry.pk) for entry in pending])
        chained += len(pending)
    return chained


def _unchained():
    return LedgerEntry.objects.filter(seq=None)


def _link(entries: list[LedgerEntry], seq: int, prev_hash: str) -> None:
    """Give `entries` the places after entry `seq` (whose hash is `prev_hash`), in order."""
    for entry in entries:
        seq += 1
        entry.seq, entry.prev_hash = seq, prev_hash
        entry.hash = prev_hash = entry_hash(seq=seq, kind=entry.kind, ref=entry.ref, digest=entry.digest,
                                            prev_hash=prev_hash)


def head() -> tuple[int, str]:
    """The ledger's head once everything committed is chained."""
    chain_pending()
    return chained_head()
