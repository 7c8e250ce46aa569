"""DurableWorkflowEngine: audit-chain verification and resume (the seed's
`workflows.persistence.durable`).

Verification reads the three tables with a raw cursor, a range of workflow ids at a time,
and decrypts the encrypted columns with the field's own helper (`decrypt_stored`): building
model objects cost more than the checks. `verify_all` can split the ids over worker
processes (docs/decisions.md, "Chain verification at scale")."""

from __future__ import annotations

import hashlib
import hmac
import logging
import multiprocessing
import uuid
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any, Iterable, Iterator, NamedTuple

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection

from governance.fields import Undecryptable, current_ciphers, decrypt_stored, undecryptable_as_marker

from ..chain import checkpoint_hash, transition_hash
from ..snapshot import checkpoint_data_of
from . import verify_worker
from .models import (GENESIS_HASH, ChainSeal, VerificationDepth, WorkflowCheckpoint, WorkflowInstance,
                     WorkflowTransition)

logger = logging.getLogger(__name__)

TRANSITION_COLUMNS = ("workflow_id", "seq", "from_state", "to_state", "triggered_by", "reason", "payload",
                      "created_at", "prev_hash", "hash")
STREAM_CHUNK = 500  # workflows per batch: bounds the decoded checkpoints held at once
SEAL_VERSION = 1  # raise it when judge() checks more: every chain then earns its seal in full again


@dataclass(frozen=True)
class ChainReport:
    workflow_id: str
    is_valid: bool
    message: str
    transitions: int
    checkpoints: int
    broken_seq: int | None = None
    by_seal: bool = False  # accepted because its stored bytes match the seal of an earlier full check

    def as_tuple(self) -> tuple[bool, str]:
        return self.is_valid, self.message


def verify_transitions(workflow_id: str, rows: Iterable[tuple], *, version: int | None = None) -> tuple[int, str | None, int | None]:
    """Check one workflow's transitions, given in seq order as TRANSITION_COLUMNS tuples
    (workflow_id excluded). Returns (count, first problem or None, its seq)."""
    expected_seq, prev = 1, GENESIS_HASH
    count = 0
    for seq, from_state, to_state, triggered_by, reason, payload, created_at, prev_hash, stored in rows:
        count += 1
        if any(isinstance(value, Undecryptable) for value in (triggered_by, reason, payload)):
            return count, f"seq {seq}: cannot decrypt (no key in FERNET_KEYS decrypts its encrypted columns)", seq
        if seq != expected_seq:
            return count, f"seq {expected_seq}: gap in seq (next stored transition is seq {seq})", expected_seq
        if prev_hash != prev:
            return count, f"seq {seq}: broken link (prev_hash does not match the hash of seq {seq - 1})", seq
        computed = transition_hash(workflow_id=workflow_id, seq=seq, from_state=from_state, to_state=to_state,
                                   triggered_by=triggered_by, reason=reason, payload=payload,
                                   created_at=created_at, prev_hash=prev_hash)
        if computed != stored:
            return count, f"seq {seq}: hash mismatch (stored {stored[:12]}…, computed {computed[:12]}…)", seq
        prev = stored
        expected_seq += 1
    if version is not None and count != version:
        missing = count + 1
        return count, (f"seq {missing}: gap in seq (the workflow records {version} transitions, "
                       f"{count} are stored)"), missing
    return count, None, None


class WorkflowRow(NamedTuple):
    """The columns of a workflow row that verification compares (checkpoint_data_of reads them)."""

    pk: int
    workflow_id: str
    workflow_type: str
    current_state: str
    status: str
    state_data: Any
    version: int


def _uuid_text(value: Any) -> str:
    return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))


def _timestamp(value: Any) -> datetime | str:
    """SQLite returns DateTimeFields as naive UTC text, PostgreSQL as aware datetimes."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return value  # transition_hash rejects it: reported as that seq's problem
    return value


class _Stored(NamedTuple):
    """One workflow's rows as the database returned them, still encrypted (binary columns
    as bytes): what a seal's MAC covers and what `decrypted` turns into judge()'s input."""

    workflow: tuple
    transitions: list[tuple]
    checkpoints: list[tuple]

    def decrypted(self, fernet) -> tuple[WorkflowRow, list[tuple], list[tuple]]:
        pk, wid, wtype, state, status, data, version = self.workflow
        workflow = WorkflowRow(pk, _uuid_text(wid), wtype, state, status,
                               decrypt_stored(data, fernet, "workflows.WorkflowInstance.state_data"), version)
        transitions = [(seq, from_state, to_state,
                        decrypt_stored(triggered_by, fernet, "workflows.WorkflowTransition.triggered_by"),
                        decrypt_stored(reason, fernet, "workflows.WorkflowTransition.reason"),
                        decrypt_stored(payload, fernet, "workflows.WorkflowTransition.payload"),
                        _timestamp(created_at), prev_hash, stored)
                       for seq, from_state, to_state, triggered_by, reason, payload, created_at, prev_hash, stored
                       in self.transitions]
        checkpoints = [(seq, decrypt_stored(data, fernet, "workflows.WorkflowCheckpoint.checkpoint_data"), stored)
                       for seq, data, stored in self.checkpoints]
        return workflow, transitions, checkpoints

    def digest(self, key: bytes) -> str:
        """HMAC-SHA256 over the rows the nightly depth reads (checkpoints from the row's
        version on), whichever depth read them."""
        version = self.workflow[6]
        newest = [row for row in self.checkpoints if row[0] >= version]
        return hmac.new(key, repr((self.workflow, self.transitions, newest)).encode(), hashlib.sha256).hexdigest()


def _plain(row: tuple) -> tuple:
    """PostgreSQL returns binary columns as memoryview, whose repr is an address."""
    return tuple(bytes(value) if isinstance(value, memoryview) else value for value in row)


def seal_key() -> bytes | None:
    """The seals' MAC key, derived from AEGIS_ANCHOR_KEY, the FERNET_KEYS in use and
    SEAL_VERSION: changing any of them retires every seal. None without an anchor key
    (then nothing is sealed and every chain is verified in full each time)."""
    anchor = settings.AEGIS_ANCHOR_KEY
    if not anchor:
        return None
    material = "\n".join((f"aegis-chain-seal-v{SEAL_VERSION}", *settings.FERNET_KEYS))
    return hmac.new(anchor.encode("utf-8"), material.encode("utf-8"), hashlib.sha256).digest()


class _RangeReader:
    """Reads the workflows with lo < id <= hi, their transitions, the checkpoints that
    `depth` checks and their seals, as stored (decryption is left to the caller)."""

    def __init__(self, depth: str):
        quote = connection.ops.quote_name
        self.depth = depth
        w, t, c, s = (quote(m._meta.db_table)
                      for m in (WorkflowInstance, WorkflowTransition, WorkflowCheckpoint, ChainSeal))
        self.workflows_sql = (f"SELECT id, workflow_id, workflow_type, current_state, status, state_data, version "
                              f"FROM {w} WHERE id > %s AND id <= %s ORDER BY id")
        self.transitions_sql = (f"SELECT {', '.join(TRANSITION_COLUMNS)} FROM {t} "
                                f"WHERE workflow_id > %s AND workflow_id <= %s ORDER BY workflow_id, seq")
        # Newest depth: only the checkpoints at or after the row's version (normally the
        # newest alone; a later one, which resume() would pick, is checked as well).
        newest = "" if depth == VerificationDepth.FULL else f" AND {c}.seq >= {w}.version"
        self.checkpoints_sql = (f"SELECT {c}.workflow_id, {c}.seq, {c}.checkpoint_data, {c}.hash FROM {c} "
                                f"JOIN {w} ON {w}.id = {c}.workflow_id "
                                f"WHERE {c}.workflow_id > %s AND {c}.workflow_id <= %s{newest} "
                                f"ORDER BY {c}.workflow_id, {c}.seq")
        self.seals_sql = f"SELECT workflow_pk, digest FROM {s} WHERE workflow_pk > %s AND workflow_pk <= %s"

    def read(self, lo: int, hi: int, *, seals: bool) -> tuple[list[_Stored], dict[int, str]]:
        """(each workflow's stored rows in id order, the seals' digests by workflow id, read
        only if `seals`)."""
        with connection.cursor() as cursor:
            cursor.execute(self.workflows_sql, [lo, hi])
            stored = {row[0]: _Stored(_plain(row), [], []) for row in cursor.fetchall()}
            cursor.execute(self.transitions_sql, [lo, hi])
            for row in cursor.fetchall():
                if row[0] in stored:
                    stored[row[0]].transitions.append(_plain(row[1:]))
            cursor.execute(self.checkpoints_sql, [lo, hi])
            for row in cursor.fetchall():
                stored[row[0]].checkpoints.append(_plain(row[1:]))
            digests = {}
            if seals:
                cursor.execute(self.seals_sql, [lo, hi])
                digests = dict(cursor.fetchall())
        return list(stored.values()), digests


class DurableWorkflowEngine:
    """Verifies audit chains and resumes workflows from their last checkpoint.

    `depth` (VerificationDepth): FULL, the default, re-hashes every checkpoint; NEWEST only
    the newest (the nightly run's). `processes` > 1 lets `verify_all` split the workflows
    over that many worker processes when it can (see `_pool_refusal`). `seal` (the
    verification runs') reads and writes ChainSeals: an unchanged chain is not re-derived."""

    def __init__(self, *, depth: str = VerificationDepth.FULL, processes: int = 1, seal: bool = False):
        self.depth = VerificationDepth(depth)
        self.processes = max(1, int(processes))
        self.seal = seal

    def verify_audit_chain(self, workflow_id) -> tuple[bool, str]:
        """(is_valid, message); the message names the first broken seq and why."""
        return self.report(workflow_id).as_tuple()

    def report(self, workflow_id) -> ChainReport:
        """One workflow's report. A value no key decrypts makes the chain broken (reported),
        not the verification (raised)."""
        try:
            pk = WorkflowInstance.objects.filter(workflow_id=workflow_id).values_list("id", flat=True).first()
        except (ValueError, ValidationError):
            pk = None
        reports = self.reports_between(pk - 1, pk) if pk is not None else []
        return reports[0] if reports else ChainReport(str(workflow_id), False, f"no workflow {workflow_id}", 0, 0)

    def reports_between(self, lo: int, hi: int) -> list[ChainReport]:
        """The reports of the workflows with lo < id <= hi, in id order. With `seal`, a
        chain whose stored bytes match its seal is accepted at the newest depth without
        being decrypted, and every chain found valid otherwise is sealed."""
        fernet = current_ciphers()[0]
        key = seal_key() if self.seal else None
        stored, seals = _RangeReader(self.depth).read(lo, hi, seals=bool(key))
        reports, new_seals = [], []
        with undecryptable_as_marker():
            for rows in stored:
                digest = rows.digest(key) if key else None
                known = seals.get(rows.workflow[0])
                if digest and known and self.depth == VerificationDepth.NEWEST and hmac.compare_digest(digest, known):
                    reports.append(self._sealed_report(rows))
                    continue
                report = self.judge(*rows.decrypted(fernet))
                reports.append(report)
                if digest and report.is_valid and digest != known:
                    new_seals.append(ChainSeal(workflow_pk=rows.workflow[0], digest=digest))
        if new_seals:
            ChainSeal.objects.bulk_create(new_seals, update_conflicts=True, unique_fields=["workflow_pk"],
                                          update_fields=["digest", "sealed_at"])
        return reports

    def _sealed_report(self, rows: _Stored) -> ChainReport:
        """The report judge() gave these very bytes when it sealed them."""
        return self._valid_report(_uuid_text(rows.workflow[1]), len(rows.transitions), len(rows.checkpoints),
                                  by_seal=True)

    def _valid_report(self, workflow_id: str, count: int, checkpoints: int, *, by_seal: bool = False) -> ChainReport:
        checked = (f"{checkpoints} checkpoints" if self.depth == VerificationDepth.FULL
                   else "newest checkpoint (older ones not re-hashed)")
        return ChainReport(workflow_id, True, f"chain valid: {count} transitions, {checked}", count, checkpoints,
                           by_seal=by_seal)

    def verify_all(self) -> Iterator[ChainReport]:
        """Every workflow's report in workflow-id order, STREAM_CHUNK workflows at a time
        (memory stays flat), in worker processes when `processes` > 1 and that is possible."""
        bounds = self._chunk_bounds()
        refusal = self._pool_refusal() if self.processes > 1 and len(bounds) > 1 else "one process asked for"
        if refusal:
            if self.processes > 1 and len(bounds) > 1:
                logger.info("chain verification runs in-process (%s)", refusal)
            for lo, hi in bounds:
                yield from self.reports_between(lo, hi)
            return
        yield from self._verify_in_processes(bounds)

    def _chunk_bounds(self) -> list[tuple[int, int]]:
        """(lo, hi] id ranges of STREAM_CHUNK workflows each, in id order."""
        ids = list(WorkflowInstance.objects.order_by("id").values_list("id", flat=True))
        starts = [0] + ids[STREAM_CHUNK - 1:-1:STREAM_CHUNK]
        ends = ids[STREAM_CHUNK - 1::STREAM_CHUNK]
        if ids and (not ends or ends[-1] != ids[-1]):
            ends.append(ids[-1])
        return list(zip(starts, ends))

    def _pool_refusal(self) -> str | None:
        """Why worker processes cannot see what this process sees, or cannot be started."""
        if connection.in_atomic_block:
            return "inside a transaction, whose uncommitted rows other connections cannot see"
        if connection.vendor == "sqlite" and connection.is_in_memory_db():
            return "an in-memory SQLite database is private to this process"
        if multiprocessing.current_process().daemon:
            return "a daemonic process (e.g. a Celery prefork worker) may not start processes"
        return None

    def _verify_in_processes(self, bounds: list[tuple[int, int]]) -> Iterator[ChainReport]:
        """Spawned workers (verify_worker), each with its own connection to this process's
        database; at most two chunks per worker in flight, results taken in submission
        order, so the reports keep workflow-id order and memory stays flat."""
        database = {**connection.settings_dict}
        with ProcessPoolExecutor(max_workers=min(self.processes, len(bounds)),
                                 mp_context=multiprocessing.get_context("spawn"), initializer=verify_worker.start,
                                 initargs=(settings.SETTINGS_MODULE, database)) as pool:
            chunks = iter(bounds)
            pending = deque(pool.submit(verify_worker.verify_range, str(self.depth), self.seal, lo, hi)
                            for lo, hi in islice(chunks, 2 * self.processes))
            while pending:
                reports = pending.popleft().result()
                for lo, hi in islice(chunks, 1):
                    pending.append(pool.submit(verify_worker.verify_range, str(self.depth), self.seal, lo, hi))
                yield from reports

    def judge(self, workflow: WorkflowRow, rows: Iterable[tuple], checkpoints: list[tuple]) -> ChainReport:
        """One workflow's report from its values (read from the database, or from a backup
        record about to be restored: anything with WorkflowRow's attributes)."""
        workflow_id = workflow.workflow_id
        rows = list(rows)
        count, problem, broken = verify_transitions(workflow_id, rows, version=workflow.version)
        if problem:
            return ChainReport(workflow_id, False, problem, count, len(checkpoints), broken)
        to_state = {row[0]: row[2] for row in rows}
        last_state = rows[-1][2] if rows else ""
        if workflow.current_state != last_state:
            return ChainReport(workflow_id, False, f"seq {count}: checkpoint mismatch (the workflow row's state "
                                                   f"{workflow.current_state!r} differs from its last transition's "
                                                   f"{last_state!r})",
                               count, len(checkpoints), count)
        for seq, data, stored in checkpoints:
            if isinstance(data, Undecryptable):
                return ChainReport(workflow_id, False, f"seq {seq}: cannot decrypt its checkpoint",
                                   count, len(checkpoints), seq)
            if checkpoint_hash(data) != stored:
                return ChainReport(workflow_id, False, f"seq {seq}: checkpoint mismatch (hash of its data differs)",
                                   count, len(checkpoints), seq)
            if seq not in to_state or data.get("current_state") != to_state[seq] or data.get("version") != seq:
                return ChainReport(workflow_id, False,
                                   f"seq {seq}: checkpoint mismatch (does not match transition {seq})",
                                   count, len(checkpoints), seq)
        if workflow.version:
            newest = checkpoints[-1] if checkpoints else None
            if newest is None or newest[0] != workflow.version:
                return ChainReport(workflow_id, False,
                                   f"seq {workflow.version}: checkpoint mismatch (no checkpoint of the current state)",
                                   count, len(checkpoints), workflow.version)
            if isinstance(workflow.state_data, Undecryptable):
                return ChainReport(workflow_id, False, f"seq {workflow.version}: cannot decrypt the workflow's state",
                                   count, len(checkpoints), workflow.version)
            if newest[1] != checkpoint_data_of(workflow):
                return ChainReport(workflow_id, False,
                                   f"seq {workflow.version}: checkpoint mismatch (the workflow row differs from "
                                   f"its checkpoint)", count, len(checkpoints), workflow.version)
        return self._valid_report(workflow_id, count, len(checkpoints))

    def resume(self, workflow_id) -> dict[str, Any]:
        """The state to resume from after a crash: the newest checkpoint that verifies."""
        for seq, data, stored in (WorkflowCheckpoint.objects.filter(workflow__workflow_id=workflow_id)
                                  .order_by("-seq").values_list("seq", "checkpoint_data", "hash")):
            if checkpoint_hash(data) == stored:
                return data
        raise LookupError(f"no valid checkpoint for workflow {workflow_id}")
