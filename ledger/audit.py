"""Verifying the ledger both ways (docs/operations.md, "The ledger and its anchors").

First the chain itself: seq 1, 2, … with no gap, each entry's hash recomputed and linked to
the one before. Then, kind by kind, a merge of the ledger's entries with the objects stored
now, both in ref order: an entry whose object is gone is *deleted*, one whose object no
longer gives its digest is *changed*, and an object with no entry is *inserted*. Both sides
stream in ref order, so memory stays flat however much is stored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

from django.db import connection

from calibration.chain import content_hash
from calibration.models import ConfigurationVersion
from governance.models import DecisionSeal
from workflows.persistence.models import WorkflowInstance, WorkflowTransition

from . import anchors
from .chain import (CONFIGURATION_VERSION, DECISION_SEAL, GENESIS_HASH, TRANSITION, WORKFLOW, configuration_digest,
                    describe, entry_hash, number_ref, transition_ref, workflow_digest, workflow_ref)
from .models import LedgerEntry
from .services import chain_pending

READ_BATCH = 2000


@dataclass(frozen=True)
class LedgerFinding:
    """One thing wrong: an object (kind and ref) or the ledger's chain itself (kind None)."""

    reason: str
    kind: str | None = None
    ref: str | None = None
    seq: int | None = None

    @property
    def subject(self) -> str:
        if self.kind:
            return describe(self.kind, self.ref)
        return f"ledger entry {self.seq}" if self.seq is not None else "ledger anchor"

    @property
    def message(self) -> str:
        return f"{self.subject}: {self.reason}"

    def as_failure(self) -> dict:
        return {"ledger": self.subject, "reason": self.reason, "message": self.message, "seq": self.seq}


@dataclass
class LedgerTally:
    entries: int = 0
    objects: int = 0
    broken: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS_HASH


def _rows(sql: str, params=()) -> Iterator[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        while batch := cursor.fetchmany(READ_BATCH):
            yield from batch


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _in_ref_order(column: str) -> str:
    """ORDER BY that sorts ASCII text as Python does (byte order), whatever the collation."""
    return f'{column} COLLATE "C"' if connection.vendor == "postgresql" else column


# --- the objects stored now, as (ref, digest) in ref order ---------------------------------

def _workflows() -> Iterator[tuple[str, str]]:
    rows = (WorkflowInstance.objects.order_by("workflow_id")
            .values_list("workflow_id", "workflow_type", "created_at", "customer__customer_id"))
    for workflow_id, workflow_type, created_at, customer in rows.iterator(chunk_size=READ_BATCH):
        yield workflow_ref(workflow_id), workflow_digest(workflow_id=workflow_id, workflow_type=workflow_type,
                                                         created_at=created_at, customer_id=customer)


def _transitions() -> Iterator[tuple[str, str]]:
    for workflow_id, seq, digest in _rows(
            f"SELECT w.workflow_id, t.seq, t.hash FROM {_table(WorkflowTransition)} t "
            f"JOIN {_table(WorkflowInstance)} w ON w.id = t.workflow_id ORDER BY w.workflow_id, t.seq"):
        yield transition_ref(workflow_id, seq), digest


def _configuration_versions() -> Iterator[tuple[str, str]]:
    rows = ConfigurationVersion.objects.order_by("version").values_list("version", "parameters", "source",
                                                                        "source_ref")
    for version, parameters, source, source_ref in rows.iterator(chunk_size=READ_BATCH):
        yield number_ref(version), configuration_digest(version=version, content_hash=content_hash(parameters),
                                                        source=source, source_ref=source_ref)


def _decision_seals() -> Iterator[tuple[str, str]]:
    for seq, digest in DecisionSeal.objects.order_by("seq").values_list("seq", "hash").iterator(chunk_size=READ_BATCH):
        yield number_ref(seq), digest


STORED: dict[str, Callable[[], Iterator[tuple[str, str]]]] = {
    WORKFLOW: _workflows, TRANSITION: _transitions, CONFIGURATION_VERSION: _configuration_versions,
    DECISION_SEAL: _decision_seals,
}


# --- verification ---------------------------------------------------------------------------

def _chain_findings(tally: LedgerTally) -> Iterator[LedgerFinding]:
    expected, prev_hash = 1, GENESIS_HASH
    for seq, kind, ref, digest, stored_prev, stored_hash in _rows(
            f"SELECT seq, kind, ref, digest, prev_hash, hash FROM {_table(LedgerEntry)} "
            "WHERE seq IS NOT NULL ORDER BY seq"):
        tally.entries += 1
        if seq != expected:
            tally.broken += 1
            yield LedgerFinding(f"missing: the ledger goes from entry {expected - 1} to {seq} (entries removed)",
                                seq=expected)
        elif stored_prev != prev_hash:
            tally.broken += 1
            yield LedgerFinding(f"broken link: its prev_hash is not the hash of entry {seq - 1}", seq=seq)
        if entry_hash(seq=seq, kind=kind, ref=ref, digest=digest, prev_hash=stored_prev) != stored_hash:
            tally.broken += 1
            yield LedgerFinding(f"hash mismatch: the entry about {describe(kind, ref)} was edited", seq=seq)
        expected, prev_hash = seq + 1, stored_hash
        tally.head_seq, tally.head_hash = seq, stored_hash


DELETED, INSERTED, CHANGED, SAME = "deleted", "inserted", "changed", "same"


def _merge(kind: str) -> Iterator[tuple[str, tuple | None, tuple[str, str] | None]]:
    """(verdict, entry (ref, digest, seq) or None, object (ref, digest) or None) for every
    entry and every stored object of `kind`, merged in ref order."""
    entries = _rows(f"SELECT ref, digest, seq FROM {_table(LedgerEntry)} WHERE kind = %s "
                    f"ORDER BY {_in_ref_order('ref')}", [kind])
    stored = STORED[kind]()
    entry, item = next(entries, None), next(stored, None)
    while entry is not None or item is not None:
        if item is None or (entry is not None and entry[0] < item[0]):
            yield DELETED, entry, None
            entry = next(entries, None)
        elif entry is None or item[0] < entry[0]:
            yield INSERTED, None, item
            item = next(stored, None)
        else:
            yield (SAME if entry[1] == item[1] else CHANGED), entry, item
            entry, item = next(entries, None), next(stored, None)


def _kind_findings(kind: str, tally: LedgerTally) -> Iterator[LedgerFinding]:
    for verdict, entry, item in _merge(kind):
        tally.objects += item is not None
        if verdict == SAME:
            continue
        tally.broken += 1
        if verdict == DELETED:
            yield LedgerFinding(f"deleted: ledger entry {entry[2]} records it, and it is no longer stored",
                                kind, entry[0], entry[2])
        elif verdict == INSERTED:
            yield LedgerFinding("inserted: it is stored but has no ledger entry", kind, item[0])
        else:
            yield LedgerFinding(f"changed: it no longer matches what ledger entry {entry[2]} records",
                                kind, entry[0], entry[2])


def unrecorded() -> Iterator[tuple[str, str, str]]:
    """(kind, ref, digest) of every stored object with no ledger entry: what a restore of a
    backup written before the ledger existed records."""
    for kind in STORED:
        for verdict, _, item in _merge(kind):
            if verdict == INSERTED:
                yield (kind, *item)


def verify_ledger(tally: LedgerTally | None = None) -> Iterator[LedgerFinding]:
    """Every finding about the ledger and the objects it records, streaming."""
    tally = tally if tally is not None else LedgerTally()
    chain_pending()
    yield from _chain_findings(tally)
    for kind in STORED:
        yield from _kind_findings(kind, tally)


@dataclass
class LedgerAudit:
    """A verification of the ledger and its anchor: what it covered, its first findings,
    and what became of the anchor."""

    tally: LedgerTally
    findings: list[LedgerFinding]
    anchor_note: str

    @property
    def broken(self) -> int:
        return self.tally.broken


def audit_ledger(*, keep: int = 50, on_finding: Callable[[LedgerFinding], None] | None = None) -> LedgerAudit:
    """Verify the ledger both ways, then check it against the newest anchor; when nothing is
    wrong, anchor its head anew. Keeps the first `keep` findings (all are counted)."""
    tally, findings = LedgerTally(), []

    def found(finding: LedgerFinding) -> None:
        if len(findings) < keep:
            findings.append(finding)
        if on_finding:
            on_finding(finding)

    for finding in verify_ledger(tally):
        found(finding)
    if anchors.anchor_key() is None:
        return LedgerAudit(tally, findings, "not anchored: AEGIS_ANCHOR_KEY is not set")
    try:
        anchor = anchors.read_anchor()
    except anchors.AnchorProblem as exc:
        anchor, problem = None, str(exc)
    else:
        problem = anchors.problem_against(anchor, tally.head_seq) if anchor else None
    if problem:
        tally.broken += 1
        found(LedgerFinding(problem, seq=anchor.seq if anchor else None))
    if tally.broken:
        return LedgerAudit(tally, findings, f"anchor kept at entry {anchor.seq}" if anchor else "anchor not written")
    written = anchors.write_anchor(tally.head_seq, tally.head_hash)
    return LedgerAudit(tally, findings, f"anchored at entry {written.seq} in {anchors.anchor_path()}")
