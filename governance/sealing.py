"""Tamper evidence for decisions: each stored decision's digest, sealed into hash-chained
blocks (see docs/decisions.md, "Sealed decisions")."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from typing import Any, Iterator

from django.db import connection, transaction
from django.utils import timezone

from ledger import services as ledger
from workflows.chain import canonical_json, sha256_hex
from workflows.serialization import utc_iso

from .fields import EncryptedField, Undecryptable, undecryptable_as_marker
from .models import Decision, DecisionSeal, TelemetryEvent
from .telemetry import Event, emit

# Every stored column of a decision except the ids the database assigns; references by
# their public ids, so a restore into another database keeps every digest.
DIGEST_COLUMNS = ("channel", "status", "shadow", "config_version", "idempotency_key", "request_id",
                  "proposal_summary", "agent_id", "session_id", "metadata", "estimated_impact",
                  "requires_human_approval", "risk_baseline", "risk_proposed", "profit_baseline", "profit_proposed",
                  "novelty_score", "complexity_score", "quality_score", "has_zero_subscore", "utility_mean",
                  "utility_std_error", "drift_status", "request_data", "response")


def decision_digest(decision) -> str:
    """SHA-256 of the decision's canonical record (plaintext of its encrypted columns)."""
    record = {name: getattr(decision, name) for name in DIGEST_COLUMNS}
    record.update(
        decision_id=str(decision.decision_id),
        customer=decision.customer.customer_id if decision.customer_id else None,
        api_key=decision.api_key.key_id if decision.api_key_id else None,
        review_workflow_id=str(decision.review_workflow_id) if decision.review_workflow_id else None,
        created_at=utc_iso(decision.created_at),
        replay_vector=bytes(decision.replay_vector).hex())
    return sha256_hex(canonical_json(record))


# --- sealing --------------------------------------------------------------------------------------

GENESIS_HASH = "0" * 64
DEFAULT_BLOCK = 5000
READ_BATCH = 500  # decisions read (and decrypted) at a time while verifying

SEALED_VALID, UNSEALED, BROKEN = "sealed-valid", "unsealed", "broken"


def entries_digest(entries: list) -> str:
    return sha256_hex(canonical_json(entries))


def block_hash(*, seq: int, first_pk: int, last_pk: int, count: int, entries_hash: str, prev_hash: str,
               created_at) -> str:
    return sha256_hex(canonical_json({
        "seq": seq, "first_pk": first_pk, "last_pk": last_pk, "count": count, "entries_hash": entries_hash,
        "prev_hash": prev_hash, "created_at": utc_iso(created_at)}))


def newest_block():
    """The newest block (without its entries), or None."""
    return DecisionSeal.objects.defer("entries").order_by("-seq").first()


def _exclude_decision_writers() -> None:
    """Wait for the inserts in flight and hold new ones off until this transaction ends."""
    if connection.vendor == "postgresql":
        # Conflicts with the ROW EXCLUSIVE lock every INSERT takes (before it draws its pk
        # from the sequence), and with itself.
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {connection.ops.quote_name(Decision._meta.db_table)} "
                           "IN SHARE ROW EXCLUSIVE MODE")
    elif connection.vendor != "sqlite":
        # SQLite: BEGIN IMMEDIATE (DATABASES OPTIONS transaction_mode) already holds the only
        # write lock, so no other insert is in flight meanwhile.
        raise RuntimeError(f"sealing decisions is not supported on database {connection.vendor!r}")


def _exclude_other_sealers() -> None:
    """Two sealers queue here (readers and /evaluate are not affected)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {connection.ops.quote_name(DecisionSeal._meta.db_table)} "
                           "IN SHARE ROW EXCLUSIVE MODE")


def _committed_horizon() -> int:
    """The highest pk once every insert in flight has finished. pks are drawn before their
    transaction commits, so on PostgreSQL pk 11 can be visible while pk 10 is not yet; every
    pk up to this one is now committed or gone for good. The lock on decisions is held for
    this one index lookup only."""
    with transaction.atomic(), connection.cursor() as cursor:
        _exclude_decision_writers()
        cursor.execute(f"SELECT MAX(id) FROM {connection.ops.quote_name(Decision._meta.db_table)}")
        return cursor.fetchone()[0] or 0


def seal_decisions(max_per_block: int = DEFAULT_BLOCK) -> int:
    """Seal every decision with a pk beyond the last block, at most `max_per_block` per
    block; returns how many were sealed. /evaluate waits only while the committed horizon
    is read; the block is read, hashed and stored after that, in its own transaction."""
    if max_per_block < 1:
        raise ValueError("max_per_block must be at least 1")
    sealed = 0
    while True:
        head = newest_block()
        after = head.last_pk if head else 0
        if not Decision.objects.filter(pk__gt=after).exists():
            return sealed  # nothing committed to seal: no lock (one in flight waits for the next run)
        entries = _unsealed_ids(after, _committed_horizon(), max_per_block)
        if not entries:
            return sealed
        block = _new_block(head, after, entries)
        with transaction.atomic():
            _exclude_other_sealers()
            newest = newest_block()
            if (newest.seq if newest else 0) != (head.seq if head else 0):
                continue  # another sealer stored this block meanwhile: start again from its head
            block.save(force_insert=True)
            ledger.record_decision_seal(block)
            emit(Event.DECISIONS_SEALED, actor="aegis-sealer", subject=f"block {block.seq}",
                 data={"seq": block.seq, "first_pk": block.first_pk, "last_pk": block.last_pk,
                       "count": block.count, "hash": block.hash})
        sealed += len(entries)
        if len(entries) < max_per_block:
            return sealed


def _unsealed_ids(after: int, horizon: int, limit: int) -> list[list]:
    """[pk, decision_id, content_hash] of the first `limit` decisions with after < pk <=
    horizon: raw SQL, since building the ORM's UUIDs was most of a block's time."""
    table = connection.ops.quote_name(Decision._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, decision_id, content_hash FROM {table} WHERE id > %s AND id <= %s "
                       "ORDER BY id LIMIT %s", [after, horizon, limit])
        return [[pk, _uuid_text(decision_id), content_hash] for pk, decision_id, content_hash in cursor.fetchall()]


def _uuid_text(value) -> str:
    """The canonical text of a stored UUID (PostgreSQL returns UUIDs, SQLite 32 hex digits)."""
    if isinstance(value, str) and len(value) == 32:
        value = value.lower()
        return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
    return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))


def _new_block(head, after: int, entries: list[list]) -> DecisionSeal:
    fields = {"seq": head.seq + 1 if head else 1, "first_pk": after + 1, "last_pk": entries[-1][0],
              "count": len(entries), "entries_hash": entries_digest(entries),
              "prev_hash": head.hash if head else GENESIS_HASH, "created_at": timezone.now()}
    return DecisionSeal(entries=entries, hash=block_hash(**fields), **fields)


# --- verification ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Finding:
    """One broken thing: a decision (named by its id) or a block (named by its seq)."""

    reason: str
    decision_id: str | None = None
    block: int | None = None

    @property
    def message(self) -> str:
        subject = f"decision {self.decision_id}" if self.decision_id else f"seal block {self.block}"
        return f"{subject}: {self.reason}"

    def as_failure(self) -> dict[str, Any]:
        """The entry of ChainVerificationRun.failures ("message" for the pages that show it)."""
        failure = {"decision_id": self.decision_id, "reason": self.reason, "message": self.message}
        if self.block is not None:
            failure["block"] = self.block
        return failure


@dataclass
class Tally:
    """What a verification covered (filled in while verify_decisions runs)."""

    blocks: int = 0
    checked: int = 0  # stored decisions read
    unsealed: int = 0  # of them, beyond the last block and matching their own content_hash
    broken: int = 0  # findings
    head_seq: int | None = None
    head_hash: str | None = None


@dataclass(frozen=True)
class DecisionReport:
    decision_id: str
    state: str  # SEALED_VALID, UNSEALED or BROKEN
    message: str
    block: int | None = None

    @property
    def is_valid(self) -> bool:
        """Not broken: an unsealed decision matches its own digest but is not protected yet."""
        return self.state != BROKEN

    def as_json(self) -> dict[str, Any]:
        return {"decision_id": self.decision_id, "state": self.state, "is_valid": self.is_valid,
                "message": self.message, "block": self.block}


@functools.cache
def _encrypted_names() -> tuple[str, ...]:
    return tuple(f.name for f in Decision._meta.concrete_fields if isinstance(f, EncryptedField))


def _digest_or_problem(row) -> tuple[str | None, str | None]:
    """(digest, None), or (None, why it cannot be computed)."""
    if any(isinstance(getattr(row, name), Undecryptable) for name in _encrypted_names()):
        return None, "broken (cannot decrypt): no key in FERNET_KEYS decrypts its encrypted columns"
    try:
        return decision_digest(row), None
    except (AttributeError, TypeError, ValueError) as exc:  # e.g. a reference to a row that is gone
        return None, f"broken: its record cannot be digested ({type(exc).__name__})"


def _judge_sealed(row, entry: list, seq: int) -> list[Finding]:
    """The findings of a stored row against the block entry at its pk."""
    pk, sealed_id, sealed_hash = entry
    decision_id = str(row.decision_id)
    if decision_id != sealed_id:
        return [Finding(f"inserted: pk {pk} was sealed in block {seq} as decision {sealed_id}, "
                        "not as this one", decision_id, seq),
                Finding(f"deleted: sealed in block {seq} at pk {pk}, which now holds decision {decision_id}",
                        sealed_id, seq)]
    digest, problem = _digest_or_problem(row)
    if problem:
        return [Finding(problem, decision_id, seq)]
    column = "" if row.content_hash == sealed_hash else "; its content_hash column was altered too"
    if digest != sealed_hash:
        return [Finding(f"changed: its record no longer matches the digest sealed in block {seq}{column}",
                        decision_id, seq)]
    if column:
        return [Finding(f"changed: its content_hash column differs from the digest sealed in block {seq}",
                        decision_id, seq)]
    return []


def _judge_unsealed(row) -> Finding | None:
    digest, problem = _digest_or_problem(row)
    if problem:
        return Finding(problem, str(row.decision_id))
    if digest != row.content_hash:
        return Finding("changed or inserted by hand before it was sealed: its record does not match its "
                       "content_hash", str(row.decision_id))
    return None


def _decision_batches(low: int | None, high: int | None = None) -> Iterator[list]:
    """Decisions with low < pk <= high (no bound for None) in pk order, READ_BATCH at a time;
    a value no key decrypts is read as a marker (only while reading, never across a yield)."""
    rows = Decision.objects.select_related("customer", "api_key").order_by("pk")
    if high is not None:
        rows = rows.filter(pk__lte=high)
    while True:
        with undecryptable_as_marker():
            batch = list(rows.filter(pk__gt=low)[:READ_BATCH] if low is not None else rows[:READ_BATCH])
        if batch:
            yield batch
        if len(batch) < READ_BATCH:
            return
        low = batch[-1].pk


def _well_formed(entry) -> bool:
    return (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], int)
            and not isinstance(entry[0], bool) and isinstance(entry[1], str) and isinstance(entry[2], str))


def _block_problem(block, *, expected_seq: int | None, prev_hash: str | None, prev_last: int | None) -> str | None:
    """The first thing wrong with a block: its own hashes and shape, and (when given) its
    link to the block before it."""
    if expected_seq is not None and block.seq != expected_seq:
        return f"gap in seq: block {expected_seq} is missing (the next stored block is {block.seq})"
    if prev_hash is not None and block.prev_hash != prev_hash:
        return f"broken link: prev_hash does not match the hash of block {block.seq - 1}"
    if prev_last is not None and block.first_pk != prev_last + 1:
        return f"its range starts at pk {block.first_pk}, not right after block {block.seq - 1} (pk {prev_last})"
    entries = block.entries
    if not isinstance(entries, list) or not all(_well_formed(e) for e in entries):
        return "its entries are not a list of [pk, decision_id, content_hash]"
    if block.count != len(entries):
        return f"count {block.count} but {len(entries)} entries"
    pks = [e[0] for e in entries]
    if any(a >= b for a, b in zip(pks, pks[1:])) or (pks and (pks[0] < block.first_pk or pks[-1] != block.last_pk)):
        return f"its entries are not in pk order within {block.first_pk}–{block.last_pk}"
    if entries_digest(entries) != block.entries_hash:
        return "entries_hash mismatch (its entries were changed)"
    computed = block_hash(seq=block.seq, first_pk=block.first_pk, last_pk=block.last_pk, count=block.count,
                          entries_hash=block.entries_hash, prev_hash=block.prev_hash, created_at=block.created_at)
    if computed != block.hash:
        return f"hash mismatch (stored {block.hash[:12]}…, computed {computed[:12]}…)"
    return None


def _usable_entries(block) -> list:
    entries = block.entries if isinstance(block.entries, list) else []
    return sorted((e for e in entries if _well_formed(e)), key=lambda e: e[0])


def _check_block_range(block, low: int | None, tally: Tally) -> Iterator[Finding]:
    """Findings for the decisions with low < pk <= block.last_pk against the block's entries
    (a merge of both in pk order)."""
    entries = [e for e in _usable_entries(block) if (low is None or e[0] > low) and e[0] <= block.last_pk]
    index = 0
    for batch in _decision_batches(low, block.last_pk):
        tally.checked += len(batch)
        findings: list[Finding] = []
        for row in batch:
            while index < len(entries) and entries[index][0] < row.pk:
                pk, sealed_id, _ = entries[index]
                findings.append(Finding(f"deleted: sealed in block {block.seq} (pk {pk}) but no longer stored",
                                        sealed_id, block.seq))
                index += 1
            if index < len(entries) and entries[index][0] == row.pk:
                findings += _judge_sealed(row, entries[index], block.seq)
                index += 1
            else:
                findings.append(Finding(f"inserted: pk {row.pk} lies in the range of block {block.seq} "
                                        f"({block.first_pk}–{block.last_pk}) but was never sealed in it",
                                        str(row.decision_id), block.seq))
        yield from findings
    for pk, sealed_id, _ in entries[index:]:
        yield Finding(f"deleted: sealed in block {block.seq} (pk {pk}) but no longer stored", sealed_id, block.seq)


def _recorded_head():
    """(seq, hash) of the newest block the sealer recorded in telemetry, or None."""
    with undecryptable_as_marker():
        event = TelemetryEvent.objects.filter(name=Event.DECISIONS_SEALED).order_by("-occurred_at", "-id").first()
    data = event.data if event is not None else None
    if isinstance(data, Undecryptable) or not isinstance(data, dict):
        return None
    return data.get("seq"), data.get("hash")


def verify_decisions(tally: Tally | None = None) -> Iterator[Finding]:
    """Every finding about stored decisions and their seal blocks, streaming: one block at a
    time, its decisions READ_BATCH at a time, so memory stays flat however many there are.
    Decisions beyond the last block are counted in `tally.unsealed` (not findings) unless
    their record no longer matches their own content_hash."""
    tally = tally if tally is not None else Tally()
    expected_seq, prev_hash, prev_last = 1, GENESIS_HASH, None
    last_seq = 0
    while True:
        block = DecisionSeal.objects.filter(seq__gt=last_seq).order_by("seq").first()
        if block is None:
            break
        tally.blocks += 1
        problem = _block_problem(block, expected_seq=expected_seq, prev_hash=prev_hash,
                                 prev_last=0 if prev_last is None else prev_last)
        if problem:
            tally.broken += 1
            yield Finding(problem, block=block.seq)
        for finding in _check_block_range(block, prev_last, tally):
            tally.broken += 1
            yield finding
        last_seq, expected_seq, prev_hash = block.seq, block.seq + 1, block.hash
        prev_last = block.last_pk if prev_last is None else max(prev_last, block.last_pk)
        tally.head_seq, tally.head_hash = block.seq, block.hash
    for batch in _decision_batches(prev_last):
        findings = [f for f in map(_judge_unsealed, batch) if f is not None]
        tally.checked += len(batch)
        tally.unsealed += len(batch) - len(findings)
        tally.broken += len(findings)
        yield from findings
    recorded = _recorded_head()
    if recorded is not None and isinstance(recorded[0], int) and recorded[0] > (tally.head_seq or 0):
        tally.broken += 1
        yield Finding(f"missing: the sealer recorded block {recorded[0]} (telemetry decisions.sealed) but the "
                      f"newest stored block is {tally.head_seq or 'none'}: the newest blocks were removed",
                      block=recorded[0])
    elif recorded is not None and recorded[0] == tally.head_seq and recorded[1] != tally.head_hash:
        tally.broken += 1
        yield Finding("differs from the hash the sealer recorded for it (telemetry decisions.sealed)",
                      block=recorded[0])


def verify_decision(decision_id) -> DecisionReport | None:
    """One decision's state; None if no such decision is stored or sealed. A deleted one is
    found by its id in the blocks and reported broken."""
    try:
        wanted = uuid.UUID(str(decision_id))
    except ValueError:
        return None
    with undecryptable_as_marker():
        row = Decision.objects.select_related("customer", "api_key").filter(decision_id=wanted).first()
    if row is None:
        return _sealed_but_gone(str(wanted))
    block = DecisionSeal.objects.filter(first_pk__lte=row.pk, last_pk__gte=row.pk).order_by("seq").first()
    if block is None:
        head = newest_block()
        if head is not None and row.pk <= head.last_pk:
            return DecisionReport(str(wanted), BROKEN, f"inserted: pk {row.pk} lies in no seal block's range "
                                                        f"though block {head.seq} ends at pk {head.last_pk}")
        finding = _judge_unsealed(row)
        if finding:
            return DecisionReport(str(wanted), BROKEN, finding.reason)
        return DecisionReport(str(wanted), UNSEALED, "not sealed yet: its record matches its own content_hash; "
                                                     "the next sealing run seals it")
    previous = DecisionSeal.objects.filter(seq=block.seq - 1).defer("entries").first() if block.seq > 1 else None
    if block.seq > 1 and previous is None:
        problem = f"gap in seq: block {block.seq - 1} is missing"
    else:
        problem = _block_problem(block, expected_seq=None, prev_hash=previous.hash if previous else GENESIS_HASH,
                                 prev_last=previous.last_pk if previous else 0)
    if problem:
        return DecisionReport(str(wanted), BROKEN, f"its seal block {block.seq} is broken: {problem}", block.seq)
    entry = next((e for e in _usable_entries(block) if e[0] == row.pk), None)
    if entry is None:
        return DecisionReport(str(wanted), BROKEN, f"inserted: pk {row.pk} lies in the range of block {block.seq} "
                                                    f"({block.first_pk}–{block.last_pk}) but was never sealed in it",
                              block.seq)
    findings = [f for f in _judge_sealed(row, entry, block.seq) if f.decision_id == str(wanted)]
    if findings:
        return DecisionReport(str(wanted), BROKEN, findings[0].reason, block.seq)
    return DecisionReport(str(wanted), SEALED_VALID, f"sealed in block {block.seq} and unchanged since", block.seq)


def _sealed_but_gone(decision_id: str) -> DecisionReport | None:
    for block in DecisionSeal.objects.filter(entries__icontains=decision_id).order_by("seq"):
        for pk, sealed_id, _ in _usable_entries(block):
            if sealed_id == decision_id:
                return DecisionReport(decision_id, BROKEN, f"deleted: sealed in block {block.seq} (pk {pk}) but "
                                                           "no longer stored", block.seq)
    return None
