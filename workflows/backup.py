"""Backup and restore (PLATFORM.md §5), streaming both ways.

The file is ONE JSON document laid out one record per line, so it can be written and
read without holding it in memory:

    {"format": "aegis-backup", "format_version": 1, "sections": {
    "tiers": [
    {…}
    ,{…}
    ]
    ,"workflows": [
    …
    ]},
    "manifest": {"schema_version": …, "app_version": …, "counts": {…}, "sha256": …}}

`sha256` covers every byte before the manifest line. A restore reads the file twice:
first to check the manifest (hash, counts, every record parses), then to insert
everything in one transaction and verify every restored audit chain; any failure rolls
back, so nothing is half-restored. Rows that already exist identically are skipped, so
restoring the same file twice changes nothing; a conflicting row refuses the restore.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from django.db import transaction
from django.utils import timezone

from governance import __version__ as APP_VERSION
from governance.engine.config import contract_version
from governance.models import ApiKey, Customer, Decision, Tier

from .persistence.durable import DurableWorkflowEngine
from .persistence.models import WorkflowCheckpoint, WorkflowInstance, WorkflowTransition
from .serialization import ensure_utc, utc_iso

FORMAT = "aegis-backup"
FORMAT_VERSION = 1
BATCH = 1000
HEADER = json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION})[:-1] + ', "sections": {\n'
MANIFEST_PREFIX = '"manifest": '


class BackupError(Exception):
    """A backup file that cannot be restored; nothing was changed."""


@dataclass(frozen=True)
class Section:
    """One kind of record: how to dump every row, and how to restore a batch of them."""

    name: str
    dump: Callable[[], Iterator[dict[str, Any]]]
    restore: Callable[[list[dict[str, Any]]], int]  # returns rows inserted


def _iso(value):
    return None if value is None else utc_iso(value)


def _time(value):
    return None if value is None else ensure_utc(value)


# --- tenants ------------------------------------------------------------------------------

TIER_FIELDS = ("name", "display_name", "monthly_evaluations", "rate_per_minute", "max_keys", "monthly_price_usd",
               "features")


def dump_tiers():
    for tier in Tier.objects.order_by("id").iterator(chunk_size=BATCH):
        yield {**{f: getattr(tier, f) for f in TIER_FIELDS}, "overage_per_eval": str(tier.overage_per_eval)}


def restore_tiers(records):
    existing = set(Tier.objects.filter(name__in=[r["name"] for r in records]).values_list("name", flat=True))
    new = [Tier(**r) for r in records if r["name"] not in existing]
    Tier.objects.bulk_create(new)
    return len(new)


CUSTOMER_FIELDS = ("customer_id", "name", "email", "company", "status")


def dump_customers():
    for customer in Customer.objects.select_related("tier").order_by("id").iterator(chunk_size=BATCH):
        yield {**{f: getattr(customer, f) for f in CUSTOMER_FIELDS}, "tier": customer.tier.name,
               "created_at": _iso(customer.created_at), "updated_at": _iso(customer.updated_at)}


def restore_customers(records):
    existing = set(Customer.objects.filter(customer_id__in=[r["customer_id"] for r in records])
                   .values_list("customer_id", flat=True))
    tiers = {t.name: t for t in Tier.objects.all()}
    new = []
    for r in records:
        if r["customer_id"] in existing:
            continue
        new.append(Customer(**{f: r[f] for f in CUSTOMER_FIELDS}, tier=tiers[r["tier"]],
                            created_at=_time(r["created_at"]), updated_at=_time(r["updated_at"])))
    Customer.objects.bulk_create(new)
    return len(new)


KEY_FIELDS = ("key_id", "name", "prefix", "key_hash")


def dump_api_keys():
    for key in ApiKey.objects.select_related("customer").order_by("id").iterator(chunk_size=BATCH):
        yield {**{f: getattr(key, f) for f in KEY_FIELDS}, "customer_id": key.customer.customer_id,
               "created_at": _iso(key.created_at), "revoked_at": _iso(key.revoked_at)}


def restore_api_keys(records):
    existing = set(ApiKey.objects.filter(key_id__in=[r["key_id"] for r in records]).values_list("key_id", flat=True))
    customers = _customers_by_public_id(r["customer_id"] for r in records)
    new = [ApiKey(**{f: r[f] for f in KEY_FIELDS}, customer=customers[r["customer_id"]],
                  created_at=_time(r["created_at"]), revoked_at=_time(r["revoked_at"]))
           for r in records if r["key_id"] not in existing]
    ApiKey.objects.bulk_create(new)
    return len(new)


def _customers_by_public_id(ids) -> dict[str, Customer]:
    wanted = set(ids) - {None}
    found = {c.customer_id: c for c in Customer.objects.filter(customer_id__in=wanted)}
    missing = wanted - set(found)
    if missing:
        raise BackupError(f"records refer to unknown customer(s): {', '.join(sorted(missing))}")
    return found


# --- decisions ----------------------------------------------------------------------------

DECISION_FIELDS = ("channel", "status", "shadow", "config_version", "idempotency_key", "request_id",
                   "proposal_summary", "agent_id", "session_id", "metadata", "estimated_impact",
                   "requires_human_approval", "risk_baseline", "risk_proposed", "profit_baseline", "profit_proposed",
                   "novelty_score", "complexity_score", "quality_score", "has_zero_subscore", "utility_mean",
                   "utility_std_error", "drift_status", "request_data", "response")


def dump_decisions():
    rows = Decision.objects.select_related("customer", "api_key").order_by("id")
    for decision in rows.iterator(chunk_size=BATCH):
        yield {**{f: getattr(decision, f) for f in DECISION_FIELDS}, "decision_id": str(decision.decision_id),
               "customer_id": decision.customer.customer_id,
               "key_id": decision.api_key.key_id if decision.api_key else None,
               "created_at": _iso(decision.created_at)}


def restore_decisions(records):
    existing = set(str(d) for d in Decision.objects.filter(decision_id__in=[r["decision_id"] for r in records])
                   .values_list("decision_id", flat=True))
    customers = _customers_by_public_id(r["customer_id"] for r in records)
    keys = {k.key_id: k for k in ApiKey.objects.filter(key_id__in={r["key_id"] for r in records} - {None})}
    new = [Decision(**{f: r[f] for f in DECISION_FIELDS}, decision_id=r["decision_id"],
                    customer=customers[r["customer_id"]], api_key=keys.get(r["key_id"]),
                    created_at=_time(r["created_at"]))
           for r in records if r["decision_id"] not in existing]
    Decision.objects.bulk_create(new)
    return len(new)


# --- workflows ----------------------------------------------------------------------------

TRANSITION_FIELDS = ("seq", "from_state", "to_state", "triggered_by", "reason", "payload", "prev_hash", "hash")


def dump_workflows():
    """Workflows with their transitions and checkpoints, fetched a batch of workflows at a time."""
    last_id = 0
    while True:
        batch = list(WorkflowInstance.objects.filter(id__gt=last_id).select_related("customer")
                     .order_by("id")[:BATCH])
        if not batch:
            return
        last_id = batch[-1].id
        ids = [w.id for w in batch]
        transitions: dict[int, list] = {pk: [] for pk in ids}
        for t in WorkflowTransition.objects.filter(workflow_id__in=ids).order_by("workflow_id", "seq").iterator(
                chunk_size=BATCH * 5):
            transitions[t.workflow_id].append({**{f: getattr(t, f) for f in TRANSITION_FIELDS},
                                               "created_at": utc_iso(t.created_at)})
        checkpoints: dict[int, list] = {pk: [] for pk in ids}
        for c in WorkflowCheckpoint.objects.filter(workflow_id__in=ids).order_by("workflow_id", "seq").iterator(
                chunk_size=BATCH * 5):
            checkpoints[c.workflow_id].append({"seq": c.seq, "checkpoint_data": c.checkpoint_data, "hash": c.hash,
                                               "created_at": utc_iso(c.created_at), "created_by": c.created_by})
        for w in batch:
            yield {"workflow_id": str(w.workflow_id), "workflow_type": w.workflow_type,
                   "current_state": w.current_state, "status": w.status, "state_data": w.state_data,
                   "version": w.version, "customer_id": w.customer.customer_id if w.customer else None,
                   "created_at": utc_iso(w.created_at), "updated_at": utc_iso(w.updated_at),
                   "transitions": transitions[w.id], "checkpoints": checkpoints[w.id]}


def restore_workflows(records):
    ids = [r["workflow_id"] for r in records]
    existing = {str(w.workflow_id): w for w in WorkflowInstance.objects.filter(workflow_id__in=ids)}
    customers = _customers_by_public_id(r["customer_id"] for r in records)
    fresh = []
    for r in records:
        present = existing.get(r["workflow_id"])
        if present is None:
            fresh.append(r)
            continue
        last = (WorkflowTransition.objects.filter(workflow=present, seq=present.version)
                .values_list("hash", flat=True).first())
        wanted = r["transitions"][-1]["hash"] if r["transitions"] else None
        if present.version != r["version"] or last != wanted:
            raise BackupError(f"workflow {r['workflow_id']} exists with a different history; restore refused")
    instances = WorkflowInstance.objects.bulk_create([
        WorkflowInstance(workflow_id=r["workflow_id"], workflow_type=r["workflow_type"],
                         current_state=r["current_state"], status=r["status"], state_data=r["state_data"],
                         version=r["version"], customer=customers.get(r["customer_id"]),
                         created_at=_time(r["created_at"]), updated_at=_time(r["updated_at"]))
        for r in fresh])
    if instances and instances[0].pk is None:  # backends that do not return ids from bulk inserts
        pks = dict(WorkflowInstance.objects.filter(workflow_id__in=[r["workflow_id"] for r in fresh])
                   .values_list("workflow_id", "id"))
        for instance in instances:
            instance.pk = instance.id = pks[instance.workflow_id]
    transitions, checkpoints = [], []
    for instance, r in zip(instances, fresh):
        transitions.extend(WorkflowTransition(workflow=instance, created_at=_time(t["created_at"]),
                                              **{f: t[f] for f in TRANSITION_FIELDS}) for t in r["transitions"])
        checkpoints.extend(WorkflowCheckpoint(workflow=instance, seq=c["seq"], checkpoint_data=c["checkpoint_data"],
                                              hash=c["hash"], created_at=_time(c["created_at"]),
                                              created_by=c["created_by"]) for c in r["checkpoints"])
    WorkflowTransition.objects.bulk_create(transitions, batch_size=BATCH)
    WorkflowCheckpoint.objects.bulk_create(checkpoints, batch_size=BATCH)
    return len(fresh)


# Dependency order: a section may refer only to sections before it.
SECTIONS: list[Section] = [
    Section("tiers", dump_tiers, restore_tiers),
    Section("customers", dump_customers, restore_customers),
    Section("api_keys", dump_api_keys, restore_api_keys),
    Section("decisions", dump_decisions, restore_decisions),
    Section("workflows", dump_workflows, restore_workflows),
]


# --- writing ------------------------------------------------------------------------------

def _record_line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)


def write_backup(path: str | Path) -> dict[str, Any]:
    """Write a backup to `path` (gzip if it ends in .gz); returns the manifest."""
    path = Path(path)
    digest = hashlib.sha256()
    counts: dict[str, int] = {}
    partial = path.with_name(path.name + ".partial")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(partial, "wt", encoding="utf-8", newline="\n") as out:
        def emit(text: str) -> None:
            out.write(text)
            digest.update(text.encode("utf-8"))

        emit(HEADER)
        with transaction.atomic():  # one consistent snapshot (REPEATABLE READ on PostgreSQL)
            for position, section in enumerate(SECTIONS):
                emit(("," if position else "") + json.dumps(section.name) + ": [\n")
                count = 0
                for record in section.dump():
                    emit(("," if count else "") + _record_line(record) + "\n")
                    count += 1
                emit("]\n")
                counts[section.name] = count
        emit("},\n")
        manifest = {"schema_version": contract_version(), "app_version": APP_VERSION,
                    "format_version": FORMAT_VERSION, "created_at": utc_iso(timezone.now()),
                    "counts": counts, "sha256": digest.hexdigest()}
        out.write(MANIFEST_PREFIX + json.dumps(manifest) + "}\n")
    partial.replace(path)  # a crash mid-way never leaves a file that looks complete
    return manifest


# --- reading ------------------------------------------------------------------------------

def _open_text(path: Path):
    with open(path, "rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8", newline="\n")
    return open(path, "r", encoding="utf-8", newline="\n")


def _records(path: Path) -> Iterator[tuple[str, Any]]:
    """Yield ("record", (section, dict)) for each record, then ("manifest", dict).
    Checks the layout and the running SHA-256 as it goes."""
    digest = hashlib.sha256()
    section = None
    expected_sections = [s.name for s in SECTIONS]
    seen_sections: list[str] = []
    try:
        with _open_text(path) as handle:
            for number, line in enumerate(handle, start=1):
                if line.startswith(MANIFEST_PREFIX):
                    if section is not None:
                        raise BackupError(f"line {number}: manifest inside section {section!r}")
                    try:
                        manifest = json.loads(line[len(MANIFEST_PREFIX):].rstrip().removesuffix("}"))
                    except ValueError:
                        raise BackupError(f"line {number}: the manifest is not valid JSON") from None
                    if seen_sections != expected_sections:
                        raise BackupError(f"sections {seen_sections} found, expected {expected_sections}")
                    manifest["_computed_sha256"] = digest.hexdigest()
                    yield "manifest", manifest
                    return
                digest.update(line.encode("utf-8"))
                if number == 1:
                    if line != HEADER:
                        raise BackupError("not an AEGIS backup (unexpected first line)")
                    continue
                stripped = line.rstrip("\n")
                if section is None:
                    if stripped == "},":
                        continue
                    name = stripped.lstrip(",").removesuffix(": [")
                    try:
                        section = json.loads(name)
                    except ValueError:
                        raise BackupError(f"line {number}: expected a section header") from None
                    seen_sections.append(section)
                    continue
                if stripped == "]":
                    section = None
                    continue
                try:
                    yield "record", (section, json.loads(stripped.lstrip(",")))
                except ValueError:
                    raise BackupError(f"line {number}: a record of section {section!r} is not valid JSON") from None
    except (OSError, EOFError, UnicodeDecodeError, gzip.BadGzipFile) as exc:
        raise BackupError(f"cannot read {path}: {exc}") from None
    raise BackupError("the file ends before its manifest: truncated or not an AEGIS backup")


def check_backup(path: str | Path) -> dict[str, Any]:
    """Pass 1: the manifest's hash and counts match the content. Returns the manifest."""
    path = Path(path)
    if not path.exists():
        raise BackupError(f"{path}: file not found")
    counts: dict[str, int] = {}
    for kind, item in _records(path):
        if kind == "record":
            counts[item[0]] = counts.get(item[0], 0) + 1
            continue
        manifest = item
        if manifest.get("sha256") != manifest.pop("_computed_sha256"):
            raise BackupError("SHA-256 mismatch: the file was changed or corrupted after it was written")
        declared = manifest.get("counts", {})
        for name in declared:
            if declared[name] != counts.get(name, 0):
                raise BackupError(f"section {name!r} holds {counts.get(name, 0)} records, the manifest says "
                                  f"{declared[name]}")
        if manifest.get("format_version") != FORMAT_VERSION:
            raise BackupError(f"backup format {manifest.get('format_version')} is not supported "
                              f"(this release reads {FORMAT_VERSION})")
        return manifest
    raise BackupError("no manifest")  # unreachable: _records raises first


def restore_backup(path: str | Path) -> dict[str, int]:
    """Restore everything in one transaction and verify every restored chain; on any
    problem raise BackupError with nothing changed. Returns rows inserted per section."""
    path = Path(path)
    check_backup(path)
    restorers = {s.name: s.restore for s in SECTIONS}
    inserted = {s.name: 0 for s in SECTIONS}
    with transaction.atomic():
        pending: list[dict] = []
        current = None
        for kind, item in _records(path):
            if kind == "manifest":
                break
            name, record = item
            if name != current or len(pending) >= BATCH:
                if pending:
                    inserted[current] += restorers[current](pending)
                pending, current = [], name
            pending.append(record)
        if pending:
            inserted[current] += restorers[current](pending)
        for report in DurableWorkflowEngine().verify_all():
            if not report.is_valid:
                raise BackupError(f"workflow {report.workflow_id}: {report.message}; restore refused")
    return inserted
