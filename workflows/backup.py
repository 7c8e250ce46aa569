"""Backup and restore (PLATFORM.md §5), streaming both ways.

The file is ONE JSON document laid out one record per line, so it can be written and
read without holding it in memory:

    {"format": "aegis-backup", "format_version": 2, "sections": {
    "tiers": [
    "gAAAAAB…"
    ,"gAAAAAB…"
    ]
    ,"workflows": [
    …
    ]},
    "manifest": {"schema_version": …, "app_version": …, "counts": {…}, "sha256": …}}

Format 2 keeps PII encrypted (PLATFORM.md §7): each record line is a JSON string holding a
Fernet token, under the first of FERNET_KEYS, of that record's JSON compressed with zlib
(ciphertext does not compress, so the file's gzip no longer can: compressing each record
first keeps files about 4x smaller than encrypting the bare JSON would). The header, the
section names and the manifest (versions, counts, hash) stay plain: they hold no PII, and
the counts can be read without a key. Restoring decrypts with every key in FERNET_KEYS, so a
backup written before a key rotation restores as long as its key is still listed (at the
end: decrypt-only). Format 1 files (records as plain JSON objects) still restore.

`sha256` covers every byte before the manifest line (the tokens, not the plaintext). A
restore reads the file twice: first to check the manifest (hash, counts, every record
decrypts and parses), then to insert everything in one transaction and verify every
restored audit chain; any failure rolls back, so nothing is half-restored. Rows that
already exist identically are skipped, so restoring the same file twice changes nothing; a
conflicting row refuses the restore; what a migration makes on every server (version 1, the
default tiers, groups, schedules, system accounts) is reconciled with the file's copy
instead (see each section's restore), so a backup restores onto a new server.

Sections, in dependency order: role groups, accounts (under their user ids), schedules,
tiers, tenants, API keys, decisions (under their pks) and their seal blocks, drift
baselines (under their ids) and reports, configuration versions, workflows, calibration proposals, attestation signing pairs, attestations, and
the ledger last. The manifest also carries the ledger head at the snapshot, the newest
anchor and an HMAC-SHA256 under AEGIS_ANCHOR_KEY over all of it (ledger.anchors); a restore
checks, in order, the SHA-256, the format, the MAC, the counts and the ledger head, and
after inserting verifies the whole ledger against everything stored.
"""

from __future__ import annotations

import gzip
import base64
import hashlib
import json
import uuid
import zlib
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from pathlib import Path
from typing import Any, Callable, Iterator

from cryptography.fernet import InvalidToken
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.color import no_style
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from attestations.models import Attestation, SigningKeyPair
from governance import __version__ as APP_VERSION
from governance.engine.config import contract_version
from governance.fields import current_ciphers, decode_value
from calibration.chain import GENESIS_CHAIN_HASH
from calibration.models import CalibrationProposal, ConfigurationVersion
from calibration.versions import forget_newest
from governance.models import ApiKey, Customer, Decision, DecisionSeal, DriftBaseline, DriftReport, Tier
from governance.replay_packs import rebuild_replay_packs
from governance.sealing import decision_digest
from governance.telemetry import Event, emit
from ledger import anchors
from ledger.audit import unrecorded, verify_ledger
from ledger.chain import GENESIS_HASH as LEDGER_GENESIS, entry_hash
from ledger.models import LedgerEntry
from ledger.services import chain_pending, chained_head, record_many

from .persistence.durable import DurableWorkflowEngine
from .persistence.models import WorkflowCheckpoint, WorkflowInstance, WorkflowTransition
from .serialization import ensure_utc, utc_iso

FORMAT = "aegis-backup"
FORMAT_VERSION = 2  # written; 1 (plain records) is still read
PLAIN_RECORDS = 1
READABLE_VERSIONS = (PLAIN_RECORDS, FORMAT_VERSION)
BATCH = 1000


def _header(version: int) -> str:
    return json.dumps({"format": FORMAT, "format_version": version})[:-1] + ', "sections": {\n'


HEADERS = {_header(version): version for version in READABLE_VERSIONS}
HEADER = _header(FORMAT_VERSION)
MANIFEST_PREFIX = '"manifest": '


class BackupError(Exception):
    """A backup file that cannot be restored; nothing was changed."""


@dataclass(frozen=True)
class Section:
    """One kind of record: how to dump every row, and how to restore a batch of them."""

    name: str
    dump: Callable[[], Iterator[dict[str, Any]]]
    restore: Callable[[list[dict[str, Any]]], int]  # returns rows inserted
    dump_text: Callable[[], Iterator[str]] | None = None  # the records as JSON text, where that is faster

    def record_texts(self) -> Iterator[str]:
        """Every record as the JSON text a backup file holds."""
        return self.dump_text() if self.dump_text else map(_record_line, self.dump())


def _iso(value):
    return None if value is None else utc_iso(value)


def _time(value):
    return None if value is None else ensure_utc(value)


def _as_json(record: dict[str, Any]) -> dict[str, Any]:
    """A record as it reads back from the file, for comparing with a stored row."""
    return json.loads(_record_line(record))


@dataclass(frozen=True)
class RowKind:
    """A table backed up row by row: `to_record` serves both the dump and the check that
    a row already present is the same as the one in the file."""

    name: str
    queryset: Callable[[], Any]
    key: str  # the record field that identifies a row
    lookup: str  # the model field holding that key
    to_record: Callable[[Any], dict[str, Any]]
    from_record: Callable[[dict[str, Any], dict[str, Any]], Any]  # (record, resolved references) -> unsaved row
    references: Callable[[list[dict[str, Any]]], dict[str, Any]] = lambda records: {}
    bulk: bool = True  # False where rows refer to rows of the same table (saved in order)
    unkept: tuple[str, ...] = ()  # record fields a restore may not keep (a stored row may differ in them)
    after_insert: Callable[[], None] = lambda: None
    # A stored row that differs from the record but that a data migration made and nothing
    # uses yet: brought in line with the record (True), or a conflict (False).
    reconcile: Callable[[Any, dict[str, Any]], bool] = lambda present, record: False

    def dump(self) -> Iterator[dict[str, Any]]:
        for row in self.queryset().order_by("pk").iterator(chunk_size=BATCH):
            yield self.to_record(row)

    def restore(self, records: list[dict[str, Any]]) -> int:
        keys = [r[self.key] for r in records]
        _refuse_duplicates(self.name, keys)
        existing = {str(getattr(row, self.lookup)): row
                    for row in self.queryset().filter(**{f"{self.lookup}__in": keys})}
        fresh = []
        for record in records:
            present = existing.get(str(record[self.key]))
            if present is None:
                fresh.append(record)
            elif (self._comparable(_as_json(self.to_record(present))) != self._comparable(record)
                  and not self.reconcile(present, record)):
                raise BackupError(f"{self.name} {record[self.key]} exists with different contents; restore refused")
        references = self.references(fresh)
        rows = [self.from_record(record, references) for record in fresh]
        if self.bulk:
            self.queryset().model.objects.bulk_create(rows, batch_size=BATCH)
        else:
            for row in rows:
                row.save(force_insert=True)
        self.after_insert()
        return len(rows)

    def _comparable(self, record: dict[str, Any]) -> dict[str, Any]:
        return {name: value for name, value in record.items() if name not in self.unkept}

    def section(self) -> Section:
        return Section(self.name, self.dump, self.restore)


def _refuse_duplicates(section: str, keys: list) -> None:
    if len(set(map(str, keys))) != len(keys):
        seen: set[str] = set()
        twice = next(key for key in map(str, keys) if key in seen or seen.add(key))
        raise BackupError(f"section {section!r}: {twice} appears twice in the file; restore refused")


def _customers_of(records) -> dict[str, Any]:
    wanted = {r["customer_id"] for r in records} - {None}
    found = {c.customer_id: c for c in Customer.objects.filter(customer_id__in=wanted)}
    missing = wanted - set(found)
    if missing:
        raise BackupError(f"records refer to unknown customer(s): {', '.join(sorted(missing))}")
    return {"customers": found}


TIER_FIELDS = ("display_name", "monthly_evaluations", "rate_per_minute", "max_keys", "monthly_price_usd", "features",
               "overage_per_eval")


def _reconcile_tier(present: Tier, record: dict[str, Any]) -> bool:
    """A tier the migrations made on this server, no tenant on it yet, takes the backup's
    limits (the server being recovered had them edited)."""
    if present.customers.exists():
        return False
    for name in TIER_FIELDS:
        setattr(present, name, record[name])
    present.save(update_fields=TIER_FIELDS)
    return True


TIERS = RowKind(
    "tiers", Tier.objects.all, "name", "name",
    lambda t: {"name": t.name, **{f: getattr(t, f) for f in TIER_FIELDS}, "overage_per_eval": str(t.overage_per_eval)},
    lambda r, refs: Tier(**r), reconcile=_reconcile_tier)

CUSTOMER_FIELDS = ("customer_id", "name", "email", "company", "status")
CUSTOMERS = RowKind(
    "customers", lambda: Customer.objects.select_related("tier"), "customer_id", "customer_id",
    lambda c: {**{f: getattr(c, f) for f in CUSTOMER_FIELDS}, "tier": c.tier.name,
               "created_at": _iso(c.created_at), "updated_at": _iso(c.updated_at)},
    lambda r, refs: Customer(**{f: r[f] for f in CUSTOMER_FIELDS}, tier=refs["tiers"][r["tier"]],
                             created_at=_time(r["created_at"]), updated_at=_time(r["updated_at"])),
    lambda records: {"tiers": {t.name: t for t in Tier.objects.all()}})

KEY_FIELDS = ("key_id", "name", "prefix", "key_hash")
API_KEYS = RowKind(
    "api_keys", lambda: ApiKey.objects.select_related("customer"), "key_id", "key_id",
    lambda k: {**{f: getattr(k, f) for f in KEY_FIELDS}, "customer_id": k.customer.customer_id,
               "created_at": _iso(k.created_at), "revoked_at": _iso(k.revoked_at)},
    lambda r, refs: ApiKey(**{f: r[f] for f in KEY_FIELDS}, customer=refs["customers"][r["customer_id"]],
                           created_at=_time(r["created_at"]), revoked_at=_time(r["revoked_at"])),
    _customers_of)

DECISION_FIELDS = ("channel", "status", "shadow", "config_version", "idempotency_key", "request_id",
                   "proposal_summary", "agent_id", "session_id", "metadata", "estimated_impact",
                   "requires_human_approval", "risk_baseline", "risk_proposed", "profit_baseline", "profit_proposed",
                   "novelty_score", "complexity_score", "quality_score", "has_zero_subscore", "utility_mean",
                   "utility_std_error", "drift_status", "request_data", "response")


def _decision_references(records):
    refs = _customers_of(records)
    refs["keys"] = {k.key_id: k for k in ApiKey.objects.filter(key_id__in={r["key_id"] for r in records} - {None})}
    newest = DecisionSeal.objects.order_by("-seq").values_list("last_pk", flat=True).first()
    refs["sealed_up_to"] = newest or 0
    refs["taken"] = set(Decision.objects.filter(pk__in=[r["pk"] for r in records if r.get("pk")])
                        .values_list("pk", flat=True))
    return refs


def _decision_from_record(record, refs) -> Decision:
    """A decision as stored, under the pk it had, which the file's seal blocks name it by. A
    pk taken here or inside the range this database has sealed already (restoring beside
    decisions of its own), or a file without pks, gives a new pk; a decision from a file
    written before decisions had digests and review links gets its digest now (and no link)."""
    pk = record.get("pk")
    kept = pk and pk > refs["sealed_up_to"] and pk not in refs["taken"]
    decision = Decision(**{f: record[f] for f in DECISION_FIELDS}, id=pk if kept else None,
                        decision_id=record["decision_id"],
                        replay_vector=base64.b64decode(record["replay_vector"]),
                        customer=refs["customers"].get(record["customer_id"]), api_key=refs["keys"].get(record["key_id"]),
                        review_workflow_id=record.get("review_workflow_id"), content_hash=record.get("content_hash", ""),
                        created_at=_time(record["created_at"]))
    decision.content_hash = decision.content_hash or decision_digest(decision)
    return decision


DECISIONS = RowKind(
    "decisions", lambda: Decision.objects.select_related("customer", "api_key"), "decision_id", "decision_id",
    lambda d: {**{f: getattr(d, f) for f in DECISION_FIELDS}, "pk": d.pk, "decision_id": str(d.decision_id),
               "replay_vector": base64.b64encode(bytes(d.replay_vector)).decode("ascii"),
               "customer_id": d.customer.customer_id if d.customer else None,
               "key_id": d.api_key.key_id if d.api_key else None,
               "review_workflow_id": str(d.review_workflow_id) if d.review_workflow_id else None,
               "content_hash": d.content_hash, "created_at": _iso(d.created_at)},
    _decision_from_record,
    _decision_references, unkept=("pk",), after_insert=lambda: _reset_sequences())

SEAL_FIELDS = ("seq", "first_pk", "last_pk", "entries", "count", "entries_hash", "prev_hash", "hash")
DECISION_SEALS = RowKind(
    "decision_seals", DecisionSeal.objects.all, "seq", "seq",
    lambda b: {**{f: getattr(b, f) for f in SEAL_FIELDS}, "created_at": _iso(b.created_at)},
    lambda r, refs: DecisionSeal(**{f: r[f] for f in SEAL_FIELDS}, created_at=_time(r["created_at"])))

# Drift baselines keep their ids (a report names the baseline it was measured against);
# reports are one per tenant and day.
BASELINE_FIELDS = ("values", "source", "created_by")
DRIFT_BASELINES = RowKind(
    "drift_baselines", lambda: DriftBaseline.objects.select_related("customer"), "id", "pk",
    lambda b: {"id": b.pk, **{f: getattr(b, f) for f in BASELINE_FIELDS}, "customer_id": b.customer.customer_id,
               "created_at": _iso(b.created_at)},
    lambda r, refs: DriftBaseline(pk=r["id"], **{f: r[f] for f in BASELINE_FIELDS},
                                  customer=refs["customers"][r["customer_id"]], created_at=_time(r["created_at"])),
    _customers_of, after_insert=lambda: _reset_sequences(DriftBaseline))

REPORT_FIELDS = ("day", "kl_divergence", "status", "action", "message", "n_current", "n_baseline", "tau_warning",
                 "tau_critical", "config_version")


def _report_record(report: DriftReport) -> dict[str, Any]:
    return {**{f: getattr(report, f) for f in REPORT_FIELDS}, "day": report.day.isoformat(),
            "customer_id": report.customer.customer_id, "baseline": report.baseline_id,
            "created_at": _iso(report.created_at)}


def dump_drift_reports() -> Iterator[dict[str, Any]]:
    for report in DriftReport.objects.select_related("customer").order_by("pk").iterator(chunk_size=BATCH):
        yield _report_record(report)


def restore_drift_reports(records: list[dict[str, Any]]) -> int:
    """A tenant's report of a day that is stored already must be the same one."""
    _refuse_duplicates("drift_reports", [f"{r['customer_id']} {r['day']}" for r in records])
    customers = _customers_of(records)["customers"]
    baselines = DriftBaseline.objects.in_bulk({r["baseline"] for r in records})
    stored = {(report.customer.customer_id, report.day.isoformat()): report for report in DriftReport.objects
              .select_related("customer").filter(customer__in=customers.values(), day__in={r["day"] for r in records})}
    fresh = []
    for record in records:
        if record["baseline"] not in baselines:
            raise BackupError(f"drift report {record['customer_id']} {record['day']} refers to an unknown baseline")
        present = stored.get((record["customer_id"], record["day"]))
        if present is None:
            fresh.append(DriftReport(**{f: record[f] for f in REPORT_FIELDS}, customer=customers[record["customer_id"]],
                                     baseline=baselines[record["baseline"]], created_at=_time(record["created_at"])))
        elif _as_json(_report_record(present)) != record:
            raise BackupError(f"drift report {record['customer_id']} {record['day']} exists with different contents; "
                              "restore refused")
    DriftReport.objects.bulk_create(fresh, batch_size=BATCH)
    return len(fresh)


VERSION_FIELDS = ("version", "parameters", "content_hash", "source", "source_ref", "author")


def _reconcile_version_one(present: ConfigurationVersion, record: dict[str, Any]) -> bool:
    """Version 1 is made by a migration on every server, each at its own time: on a server
    with no later version, the contract's version 1 takes the backup's time (its chain hash
    covers it). Any other difference (parameters, source) stays a conflict."""
    if (present.version != 1 or present.source != ConfigurationVersion.Source.SCHEMA_DEFAULT
            or ConfigurationVersion.objects.filter(version__gt=1).exists()):
        return False
    stored = _as_json(CONFIG_VERSIONS.to_record(present))
    if {**stored, "created_at": None} != {**record, "created_at": None}:
        return False
    present.created_at = _time(record["created_at"])
    present.chain_hash = present.linked_chain_hash(GENESIS_CHAIN_HASH)
    present.save(update_fields=["created_at", "chain_hash"])
    return True


CONFIG_VERSIONS = RowKind(
    "configuration_versions", lambda: ConfigurationVersion.objects.select_related("parent"), "version", "version",
    lambda v: {**{f: getattr(v, f) for f in VERSION_FIELDS}, "parent": v.parent.version if v.parent else None,
               "created_at": _iso(v.created_at)},
    lambda r, refs: ConfigurationVersion(**{f: r[f] for f in VERSION_FIELDS}, created_at=_time(r["created_at"]),
                                         parent=ConfigurationVersion.objects.filter(version=r["parent"]).first()),
    bulk=False, reconcile=_reconcile_version_one)

PROPOSAL_FIELDS = ("parameter", "current_value", "proposed_value", "companion_changes", "justification",
                   "proposed_by")
CALIBRATION_PROPOSALS = RowKind(
    "calibration_proposals", lambda: CalibrationProposal.objects.select_related("workflow", "base_version",
                                                                             "applied_version"),
    "proposal_id", "proposal_id",
    lambda p: {**{f: getattr(p, f) for f in PROPOSAL_FIELDS}, "proposal_id": str(p.proposal_id),
               "workflow_id": str(p.workflow.workflow_id), "base_version": p.base_version.version,
               "applied_version": p.applied_version.version if p.applied_version else None,
               "created_at": _iso(p.created_at)},
    lambda r, refs: CalibrationProposal(
        **{f: r[f] for f in PROPOSAL_FIELDS}, proposal_id=r["proposal_id"],
        workflow=WorkflowInstance.objects.get(workflow_id=r["workflow_id"]),
        base_version=ConfigurationVersion.objects.get(version=r["base_version"]),
        applied_version=ConfigurationVersion.objects.filter(version=r["applied_version"]).first()
        if r["applied_version"] else None, created_at=_time(r["created_at"])))


def _b64(value) -> str | None:
    return None if value is None else base64.b64encode(bytes(value)).decode("ascii")


def _unb64(value) -> bytes | None:
    return None if value is None else base64.b64decode(value)


# Seeds travel inside the file's encrypted records, like every secret column.
SIGNING_PAIRS = RowKind(
    "attestation_signing_pairs", SigningKeyPair.objects.all, "ed25519_fingerprint", "ed25519_fingerprint",
    lambda k: {"ed25519_fingerprint": k.ed25519_fingerprint, "ed25519_public": _b64(k.ed25519_public),
               "mldsa65_public": _b64(k.mldsa65_public), "ed25519_seed": _b64(k.ed25519_seed),
               "mldsa65_seed": _b64(k.mldsa65_seed), "status": k.status, "created_at": _iso(k.created_at),
               "retired_at": _iso(k.retired_at)},
    lambda r, refs: SigningKeyPair(
        ed25519_fingerprint=r["ed25519_fingerprint"], ed25519_public=_unb64(r["ed25519_public"]),
        mldsa65_public=_unb64(r["mldsa65_public"]), ed25519_seed=_unb64(r["ed25519_seed"]),
        mldsa65_seed=_unb64(r["mldsa65_seed"]), status=r["status"], created_at=_time(r["created_at"]),
        retired_at=_time(r["retired_at"])))

ATTESTATION_FIELDS = ("envelope", "statement_sha256", "predicate", "artifact_digest", "environment", "risk_class",
                      "policy_version", "repository", "workflow_ref", "run_id", "run_attempt", "issued_at",
                      "expires_at", "request_hash")


def _attestation_references(records):
    refs = _customers_of(records)
    wanted = {r["signing_pair"] for r in records}
    refs["pairs"] = {p.ed25519_fingerprint: p for p in SigningKeyPair.objects.filter(ed25519_fingerprint__in=wanted)}
    missing = wanted - set(refs["pairs"])
    if missing:
        raise BackupError(f"attestations refer to unknown signing pair(s): {', '.join(sorted(missing))}")
    return refs


ATTESTATIONS = RowKind(
    "attestations", lambda: Attestation.objects.select_related("customer", "signing_pair"), "decision_id",
    "decision_id",
    lambda a: {**{f: getattr(a, f) for f in ATTESTATION_FIELDS}, "decision_id": str(a.decision_id),
               "customer_id": a.customer.customer_id, "signing_pair": a.signing_pair.ed25519_fingerprint,
               "expires": _iso(a.expires), "created_at": _iso(a.created_at),
               "aegis_evaluate_decision_id": str(a.aegis_evaluate_decision_id) if a.aegis_evaluate_decision_id
               else None},
    lambda r, refs: Attestation(
        **{f: r[f] for f in ATTESTATION_FIELDS}, decision_id=r["decision_id"],
        customer=refs["customers"][r["customer_id"]], signing_pair=refs["pairs"][r["signing_pair"]],
        expires=_time(r["expires"]), created_at=_time(r["created_at"]),
        aegis_evaluate_decision_id=r["aegis_evaluate_decision_id"]),
    _attestation_references)


# --- the server's own setup: role groups, accounts, schedules -----------------------------
# A disaster recovery onto a new server must bring the people back under the user ids the
# workflows know them by (four eyes compares people by id), with their roles; and the
# schedules as the operator tuned them. Groups and schedules are set up by migrations on
# every server: the backup's replace those of the same name.

def _permission_names(permissions) -> list[str]:
    return sorted(f"{p.content_type.app_label}.{p.codename}" for p in permissions)


def dump_groups() -> Iterator[dict[str, Any]]:
    for group in Group.objects.prefetch_related("permissions__content_type").order_by("pk"):
        yield {"name": group.name, "permissions": _permission_names(group.permissions.all())}


def restore_groups(records: list[dict[str, Any]]) -> int:
    _refuse_duplicates("groups", [r["name"] for r in records])
    known = {f"{app}.{codename}": pk for pk, app, codename in
             Permission.objects.values_list("pk", "content_type__app_label", "codename")}
    created = 0
    for record in records:
        unknown = sorted(set(record["permissions"]) - set(known))
        if unknown:
            raise BackupError(f"group {record['name']!r}: permission {unknown[0]} does not exist in this release")
        group, made = Group.objects.get_or_create(name=record["name"])
        group.permissions.set([known[name] for name in record["permissions"]])
        created += made
    return created


ACCOUNT_FIELDS = ("username", "password", "email", "first_name", "last_name", "is_active", "is_staff", "is_superuser")


def dump_accounts() -> Iterator[dict[str, Any]]:
    """Every account with its password hash (the record is encrypted like every other)."""
    for user in get_user_model().objects.prefetch_related("groups").order_by("pk"):
        yield {"id": user.pk, **{f: getattr(user, f) for f in ACCOUNT_FIELDS},
               "date_joined": _iso(user.date_joined), "last_login": _iso(user.last_login),
               "groups": sorted(g.name for g in user.groups.all())}


def _made_here(user) -> bool:
    """An account that cannot log in and was never given a role: a system actor the
    migrations made on this server (drift-monitor), which the backup's own copy replaces."""
    return not user.has_usable_password() and not user.groups.exists() and not user.is_staff


def restore_accounts(records: list[dict[str, Any]]) -> int:
    """Accounts the server lacks come back under their own ids, with their groups. An
    account it has already (same id and name) is left as it is: a restore never changes a
    person's password or roles here. An id or a username this server gives to someone else
    refuses the restore: restore before creating any account."""
    User = get_user_model()
    _refuse_duplicates("accounts", [r["id"] for r in records])
    _refuse_duplicates("accounts", [r["username"] for r in records])
    wanted = {r["username"]: r["id"] for r in records}
    for user in User.objects.filter(username__in=wanted).exclude(pk__in=wanted.values()):
        if not _made_here(user):
            raise BackupError(f"account {user.username!r} is user id {user.pk} here but {wanted[user.username]} in "
                              "the backup: restore onto a server where no account was created before the restore")
        user.delete()
    groups = {g.name: g for g in Group.objects.all()}
    stored = User.objects.in_bulk([r["id"] for r in records])
    inserted = 0
    for record in records:
        missing = sorted(set(record["groups"]) - set(groups))
        if missing:
            raise BackupError(f"account {record['username']!r} is in group {missing[0]!r}, which the backup lacks")
        user = stored.get(record["id"])
        if user is not None and user.username != record["username"]:
            raise BackupError(f"user id {user.pk} is {user.username!r} here but {record['username']!r} in the backup: "
                              "restore onto a server where no account was created before the restore")
        if user is not None and not _made_here(user):
            continue
        user = user or User(pk=record["id"])
        inserted += user._state.adding
        for name in ACCOUNT_FIELDS:
            setattr(user, name, record[name])
        user.date_joined, user.last_login = _time(record["date_joined"]), _time(record["last_login"])
        user.save()
        user.groups.set([groups[name] for name in record["groups"]])
    _reset_sequences(User)
    return inserted


CRONTAB_FIELDS = ("minute", "hour", "day_of_week", "day_of_month", "month_of_year")


def _schedule_record(task: PeriodicTask) -> dict[str, Any]:
    when = ({"crontab": {f: getattr(task.crontab, f) for f in CRONTAB_FIELDS} | {"timezone": str(task.crontab.timezone)}}
            if task.crontab else {"interval": {"every": task.interval.every, "period": task.interval.period}}
            if task.interval else None)
    if when is None:
        raise BackupError(f"schedule {task.name!r} is neither a crontab nor an interval; a backup carries only those")
    return {"name": task.name, "task": task.task, "enabled": task.enabled, "args": task.args, "kwargs": task.kwargs,
            "description": task.description, **when}


def dump_schedules() -> Iterator[dict[str, Any]]:
    for task in PeriodicTask.objects.select_related("crontab", "interval").order_by("pk"):
        if task.crontab or task.interval:  # celery's own clocked and solar entries are re-made by beat
            yield _schedule_record(task)


def restore_schedules(records: list[dict[str, Any]]) -> int:
    _refuse_duplicates("schedules", [r["name"] for r in records])
    created = 0
    for record in records:
        if "crontab" in record:
            crontab, interval = CrontabSchedule.objects.get_or_create(**record["crontab"])[0], None
        else:
            crontab, interval = None, IntervalSchedule.objects.get_or_create(**record["interval"])[0]
        _, made = PeriodicTask.objects.update_or_create(name=record["name"], defaults={
            "task": record["task"], "enabled": record["enabled"], "args": record["args"], "kwargs": record["kwargs"],
            "description": record["description"], "crontab": crontab, "interval": interval})
        created += made
    return created


# --- workflows ----------------------------------------------------------------------------

TRANSITION_FIELDS = ("seq", "from_state", "to_state", "triggered_by", "reason", "payload", "prev_hash", "hash")
CHECKPOINT_FIELDS = ("seq", "checkpoint_data", "hash", "created_at", "created_by")
WORKFLOW_FIELDS = ("workflow_id", "workflow_type", "current_state", "status", "state_data", "version")


def _text(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def _utc_text(value) -> str:
    """A timestamp column as read by a raw cursor (SQLite: naive UTC text; PostgreSQL: an
    aware datetime) in the file's form."""
    return utc_iso(datetime.fromisoformat(value) if isinstance(value, str) else value)


def _uuid_text(value) -> str:
    return str(value if isinstance(value, uuid.UUID) else uuid.UUID(value))


def _column_json(model, name: str) -> Callable[[Any], str]:
    """How an encrypted column's stored value becomes JSON text for a record line: decrypted
    with FERNET_KEYS (the same refusal as reading it through the ORM), a JSON value copied as
    the text it was stored as (stored compact and unescaped, as record lines are written)."""
    field = model._meta.get_field(name)

    def to_json(value) -> str:
        if value is None:
            return "null"
        plaintext = field.plaintext(value)
        if plaintext.startswith(b"json:"):
            return plaintext[5:].decode("utf-8")
        return _text(decode_value(plaintext))
    return to_json


def _select(model, columns: str, where: str, params) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM {model._meta.db_table} {where}", params)
        return cursor.fetchall()


def workflow_texts() -> Iterator[str]:
    """Workflows with their transitions and checkpoints, a keyset page of BATCH workflows at a
    time, read with a raw cursor and written as record text: no model objects, and JSON
    columns copied as their stored text instead of being decoded and encoded again."""
    state_json = _column_json(WorkflowInstance, "state_data")
    triggered_json, reason_json, payload_json = (_column_json(WorkflowTransition, name)
                                                 for name in ("triggered_by", "reason", "payload"))
    data_json, by_json = (_column_json(WorkflowCheckpoint, name) for name in ("checkpoint_data", "created_by"))
    workflows, customers = WorkflowInstance._meta.db_table, Customer._meta.db_table
    last_id = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT w.id, w.workflow_id, w.workflow_type, w.current_state, w.status, w.state_data, w.version, "
                f"c.customer_id, w.created_at, w.updated_at FROM {workflows} w "
                f"LEFT JOIN {customers} c ON c.id = w.customer_id WHERE w.id > %s ORDER BY w.id LIMIT %s",
                [last_id, BATCH])
            batch = cursor.fetchall()
        if not batch:
            return
        first_id, last_id = batch[0][0], batch[-1][0]
        span = "WHERE workflow_id >= %s AND workflow_id <= %s ORDER BY workflow_id, seq"
        transitions: dict[int, list[str]] = {row[0]: [] for row in batch}
        for pk, seq, from_state, to_state, by, reason, payload, prev_hash, digest, created in _select(
                WorkflowTransition, "workflow_id, seq, from_state, to_state, triggered_by, reason, payload, "
                "prev_hash, hash, created_at", span, [first_id, last_id]):
            transitions[pk].append(
                f'{{"seq":{seq},"from_state":{_text(from_state)},"to_state":{_text(to_state)},'
                f'"triggered_by":{triggered_json(by)},"reason":{reason_json(reason)},"payload":{payload_json(payload)},'
                f'"prev_hash":{_text(prev_hash)},"hash":{_text(digest)},"created_at":"{_utc_text(created)}"}}')
        checkpoints: dict[int, list[str]] = {row[0]: [] for row in batch}
        for pk, seq, data, digest, created, by in _select(
                WorkflowCheckpoint, "workflow_id, seq, checkpoint_data, hash, created_at, created_by", span,
                [first_id, last_id]):
            checkpoints[pk].append(f'{{"seq":{seq},"checkpoint_data":{data_json(data)},"hash":{_text(digest)},'
                                   f'"created_at":"{_utc_text(created)}","created_by":{by_json(by)}}}')
        for pk, workflow_id, kind, state, status, state_data, version, customer_id, created, updated in batch:
            yield (f'{{"workflow_id":"{_uuid_text(workflow_id)}","workflow_type":{_text(kind)},'
                   f'"current_state":{_text(state)},"status":{_text(status)},"state_data":{state_json(state_data)},'
                   f'"version":{version},"customer_id":{_text(customer_id)},"created_at":"{_utc_text(created)}",'
                   f'"updated_at":"{_utc_text(updated)}","transitions":[{",".join(transitions[pk])}],'
                   f'"checkpoints":[{",".join(checkpoints[pk])}]}}')


def dump_workflows() -> Iterator[dict[str, Any]]:
    return map(json.loads, workflow_texts())


def _verify_in_memory(record: dict[str, Any]) -> None:
    """The checks `verify_all` makes of a stored chain, made on a record as it is restored
    (the rows are inserted from exactly these values), so no second pass over the database."""
    workflow = SimpleNamespace(**{f: record[f] for f in WORKFLOW_FIELDS})
    rows = [(t["seq"], t["from_state"], t["to_state"], t["triggered_by"], t["reason"], t["payload"], t["created_at"],
             t["prev_hash"], t["hash"]) for t in record["transitions"]]
    checkpoints = [(c["seq"], c["checkpoint_data"], c["hash"]) for c in record["checkpoints"]]
    report = DurableWorkflowEngine().judge(workflow, rows, checkpoints)
    if not report.is_valid:
        raise BackupError(_chain_refusal(report))


def _chain_refusal(report) -> str:
    return f"workflow {report.workflow_id}: {report.message}; restore refused"


def _insert_rows(model, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """INSERT with executemany, each value prepared by its field's own save preparation
    (encryption under the first of FERNET_KEYS, timestamps): no model objects."""
    fields = [model._meta.get_field(name) for name in columns]
    prepared = [[field.get_db_prep_save(value, connection) for field, value in zip(fields, row)] for row in rows]
    names = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    marks = ", ".join(["%s"] * len(fields))
    with connection.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {model._meta.db_table} ({names}) VALUES ({marks})", prepared)


def restore_workflows(records):
    ids = [r["workflow_id"] for r in records]
    _refuse_duplicates("workflows", ids)
    existing = {str(w.workflow_id): w for w in WorkflowInstance.objects.filter(workflow_id__in=ids)}
    customers = _customers_of(records)["customers"]
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
    for r in fresh:
        _verify_in_memory(r)
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
    _insert_rows(WorkflowTransition, ("workflow", "created_at", *TRANSITION_FIELDS), [
        (instance.pk, _time(t["created_at"]), *(t[f] for f in TRANSITION_FIELDS))
        for instance, r in zip(instances, fresh) for t in r["transitions"]])
    _insert_rows(WorkflowCheckpoint, ("workflow", *CHECKPOINT_FIELDS), [
        (instance.pk, c["seq"], c["checkpoint_data"], c["hash"], _time(c["created_at"]), c["created_by"])
        for instance, r in zip(instances, fresh) for c in r["checkpoints"]])
    return len(fresh)


# --- the ledger ---------------------------------------------------------------------------

LEDGER_FIELDS = ("seq", "kind", "ref", "digest", "prev_hash", "hash")


def dump_ledger() -> Iterator[dict[str, Any]]:
    """Chained entries in seq order, then any not chained yet (committed inside this snapshot
    just before it was taken: their objects are in the file too)."""
    rows = LedgerEntry.objects.order_by(F("seq").asc(nulls_last=True), "id")
    for entry in rows.iterator(chunk_size=BATCH):
        yield {**{f: getattr(entry, f) for f in LEDGER_FIELDS}, "created_at": _iso(entry.created_at)}


def restore_ledger(records: list[dict[str, Any]]) -> int:
    """Entries this database has already must be the same; the others must continue its
    ledger exactly (each one's hash recomputed and linked to the one before)."""
    seq, prev_hash = chained_head()
    stored = dict(LedgerEntry.objects.filter(seq__in=[r["seq"] for r in records if r["seq"] is not None])
                  .values_list("seq", "hash"))
    present = {(kind, ref) for kind, ref in LedgerEntry.objects.filter(
        seq=None, ref__in=[r["ref"] for r in records if r["seq"] is None]).values_list("kind", "ref")}
    fresh = []
    for record in records:
        number = record["seq"]
        if number is None:
            if (record["kind"], record["ref"]) not in present:
                fresh.append(record)
            continue
        if number in stored:
            if stored[number] != record["hash"]:
                raise BackupError(f"ledger entry {number} differs from this database's own: the two ledgers diverge "
                                  "(restore into an empty, freshly migrated database)")
            continue
        if number != seq + 1 or record["prev_hash"] != prev_hash or record["hash"] != entry_hash(
                seq=number, kind=record["kind"], ref=record["ref"], digest=record["digest"],
                prev_hash=record["prev_hash"]):
            raise BackupError(f"ledger entry {number} does not continue the ledger (this database's ends at entry "
                              f"{seq}): the backup's ledger was edited, or this database's is another")
        seq, prev_hash = number, record["hash"]
        fresh.append(record)
    LedgerEntry.objects.bulk_create([
        LedgerEntry(**{f: r[f] for f in LEDGER_FIELDS}, created_at=_time(r["created_at"])) for r in fresh])
    return len(fresh)


# Dependency order: a section may refer only to sections before it.
SECTIONS: list[Section] = [
    Section("groups", dump_groups, restore_groups), Section("accounts", dump_accounts, restore_accounts),
    Section("schedules", dump_schedules, restore_schedules), TIERS.section(), CUSTOMERS.section(),
    API_KEYS.section(), DECISIONS.section(), DECISION_SEALS.section(), DRIFT_BASELINES.section(),
    Section("drift_reports", dump_drift_reports, restore_drift_reports), CONFIG_VERSIONS.section(),
    Section("workflows", dump_workflows, restore_workflows, workflow_texts), CALIBRATION_PROPOSALS.section(),
    SIGNING_PAIRS.section(), ATTESTATIONS.section(),
    Section("ledger_entries", dump_ledger, restore_ledger),  # last: it records everything above
]
# Sections newer releases added: a file written before them simply has none.
ADDED_LATER = frozenset({"attestation_signing_pairs", "attestations", "decision_seals", "ledger_entries", "groups",
                         "accounts", "schedules", "drift_baselines", "drift_reports"})


# --- writing ------------------------------------------------------------------------------

def _record_line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)


def _sealed_line(sealer, text: str) -> str:
    """A record as format 2 writes it: a JSON string holding the Fernet token of its JSON,
    zlib-compressed (tokens are URL-safe base64, so quoting them is all JSON needs)."""
    plaintext = zlib.compress(text.encode("utf-8"), 6)
    return '"' + sealer.encrypt(plaintext).decode("ascii") + '"'


def write_backup(path: str | Path) -> dict[str, Any]:
    """Write a backup to `path` (gzip if it ends in .gz), every record encrypted under the
    first of FERNET_KEYS; returns the manifest."""
    path = Path(path)
    _, sealer = current_ciphers()  # before anything is written: no keys, no file
    digest = hashlib.sha256()
    counts: dict[str, int] = {}
    partial = path.with_name(path.name + ".partial")
    if path.suffix == ".gz":
        handle = gzip.open(partial, "wt", encoding="utf-8", newline="\n", compresslevel=6)  # 9 costs ~10% more time
    else:
        handle = open(partial, "w", encoding="utf-8", newline="\n")
    with handle as out:
        def emit(text: str) -> None:
            out.write(text)
            digest.update(text.encode("utf-8"))

        emit(HEADER)
        chain_pending()  # so the snapshot's entries are chained as far as they can be
        with transaction.atomic():  # one consistent snapshot (REPEATABLE READ on PostgreSQL)
            for position, section in enumerate(SECTIONS):
                emit(("," if position else "") + json.dumps(section.name) + ": [\n")
                count = 0
                for text in section.record_texts():
                    emit(("," if count else "") + _sealed_line(sealer, text) + "\n")
                    count += 1
                emit("]\n")
                counts[section.name] = count
            head_seq, head_hash = chained_head()
        emit("},\n")
        manifest = {"schema_version": contract_version(), "app_version": APP_VERSION,
                    "format_version": FORMAT_VERSION, "created_at": utc_iso(timezone.now()),
                    "counts": counts, "sha256": digest.hexdigest(),
                    "ledger": {"seq": head_seq, "hash": head_hash}, "anchor": _carried_anchor()}
        if anchors.anchor_key() is not None:
            manifest["mac"] = anchors.mac(manifest)
        out.write(MANIFEST_PREFIX + json.dumps(manifest) + "}\n")
    partial.replace(path)  # a crash mid-way never leaves a file that looks complete
    return manifest


def _carried_anchor() -> dict[str, Any] | None:
    """The newest ledger anchor, carried in the manifest so a server restored from this file
    (whose anchor directory is gone with it) still has it; None if there is none to trust."""
    try:
        anchor = anchors.read_anchor() if anchors.anchor_key() is not None else None
    except anchors.AnchorProblem:
        return None
    return None if anchor is None else {**anchor.payload(), "mac": anchors.mac(anchor.payload())}


# --- reading ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Unreadable:
    """A record line that does not give a record (format 2: no key decrypts it, or it is not
    a token; format 1: not a JSON object). Reported, not raised, by `_records`: the first
    pass must finish the hash first, so that a file altered after writing is called that,
    not a key problem."""

    message: str


def _open_text(path: Path):
    with open(path, "rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8", newline="\n")
    return open(path, "r", encoding="utf-8", newline="\n")


def _format_of(first_line: str) -> int:
    """The format version a file's first line announces; refuses anything else."""
    version = HEADERS.get(first_line)
    if version is not None:
        return version
    try:
        header = json.loads(first_line.rstrip("\n") + "}}")
    except ValueError:
        header = None
    if (isinstance(header, dict) and header.get("format") == FORMAT
            and header.get("format_version") not in READABLE_VERSIONS):
        raise BackupError(f"backup format {header.get('format_version')} is not supported "
                          f"(this release reads {', '.join(map(str, READABLE_VERSIONS))})")
    raise BackupError("not an AEGIS backup (unexpected first line)")


def _unseal(ciphers, token: Any, section: str, number: int) -> dict[str, Any] | Unreadable:
    where = f"section {section!r}, record {number}"
    if not isinstance(token, str):
        return Unreadable(f"{where} is not an encrypted record (format {FORMAT_VERSION} encrypts every record)")
    try:
        plaintext = ciphers.decrypt(token.encode("ascii"))
    except (InvalidToken, UnicodeEncodeError):
        return Unreadable(f"{where}: no key in FERNET_KEYS decrypts it; the backup was written under a key that is "
                          "no longer in FERNET_KEYS (put that key back, at the end of the list, to restore it)")
    try:
        record = json.loads(zlib.decompress(plaintext).decode("utf-8"))
    except (zlib.error, ValueError):
        return Unreadable(f"{where} decrypts to something that is not a compressed JSON record")
    if not isinstance(record, dict):
        return Unreadable(f"{where} decrypts to something that is not a compressed JSON record")
    return record


def _records(path: Path) -> Iterator[tuple[str, Any]]:
    """Yield ("record", (section, number in section, record or Unreadable)) for each record,
    then ("manifest", dict). Checks the layout and the running SHA-256 as it goes; format-2
    records are decrypted with every key in FERNET_KEYS."""
    digest = hashlib.sha256()
    section = None
    number_in_section = 0
    version = None
    ciphers = None
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
                    if [name for name in expected_sections
                            if name in seen_sections or name not in ADDED_LATER] != seen_sections:
                        raise BackupError(f"sections {seen_sections} found, expected {expected_sections}")
                    manifest["_computed_sha256"] = digest.hexdigest()
                    manifest["_layout_version"] = version
                    yield "manifest", manifest
                    return
                digest.update(line.encode("utf-8"))
                if number == 1:
                    version = _format_of(line)
                    if version != PLAIN_RECORDS:
                        ciphers, _ = current_ciphers()  # one key set for the whole pass
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
                    number_in_section = 0
                    continue
                if stripped == "]":
                    section = None
                    continue
                number_in_section += 1
                try:
                    item = json.loads(stripped.lstrip(","))
                except ValueError:
                    raise BackupError(f"line {number}: a record of section {section!r} is not valid JSON") from None
                if ciphers is not None:
                    item = _unseal(ciphers, item, section, number_in_section)
                elif not isinstance(item, dict):
                    item = Unreadable(f"section {section!r}, record {number_in_section} is not a JSON object")
                yield "record", (section, number_in_section, item)
    except (OSError, EOFError, UnicodeDecodeError, gzip.BadGzipFile, zlib.error) as exc:
        raise BackupError(f"cannot read {path}: {exc}") from None
    raise BackupError("the file ends before its manifest: truncated or not an AEGIS backup")


def _check_manifest(manifest: dict[str, Any]) -> None:
    if manifest.get("sha256") != manifest["_computed_sha256"]:
        raise BackupError("SHA-256 mismatch: the file was changed or corrupted after it was written")
    declared = manifest.get("format_version")
    if declared not in READABLE_VERSIONS:
        raise BackupError(f"backup format {declared} is not supported "
                          f"(this release reads {', '.join(map(str, READABLE_VERSIONS))})")
    if declared != manifest["_layout_version"]:
        raise BackupError(f"the manifest says format {declared} but the file is laid out as format "
                          f"{manifest['_layout_version']}")


def _check_authentication(manifest: dict[str, Any], *, allow_unauthenticated: bool) -> None:
    """The manifest's MAC under AEGIS_ANCHOR_KEY covers its hash, counts and ledger head, so
    a file edited and re-hashed by someone without the key is refused."""
    given = manifest.get("mac")
    core = {name: value for name, value in manifest.items() if name != "mac" and not name.startswith("_")}
    if anchors.anchor_key() is None:
        if given is not None and not allow_unauthenticated:
            raise BackupError("the backup is authenticated (its manifest has a MAC) but AEGIS_ANCHOR_KEY is not set: "
                              "set it to the key the backup was written under")
        return
    if given is None:
        if allow_unauthenticated:
            return
        raise BackupError("the backup is not authenticated (its manifest has no MAC: written without "
                          "AEGIS_ANCHOR_KEY or by a release before 1.2.0); restore it with --allow-unauthenticated "
                          "only if you trust where it was kept")
    if not anchors.mac_matches(core, given):
        raise BackupError("the manifest's MAC does not verify under AEGIS_ANCHOR_KEY: the file was edited after "
                          "it was written (or written under another key)")


def _check_ledger_head(manifest: dict[str, Any], last_entry: tuple | None, has_ledger: bool) -> None:
    if not has_ledger:
        return
    declared = manifest.get("ledger") or {}
    found = last_entry or (0, LEDGER_GENESIS)
    if (declared.get("seq"), declared.get("hash")) != found:
        raise BackupError(f"the ledger section ends at entry {found[0]}, but the manifest says it was taken at entry "
                          f"{declared.get('seq')}: entries were removed or added")


def check_backup(path: str | Path, *, allow_unauthenticated: bool = False) -> dict[str, Any]:
    """Pass 1: the manifest's hash, MAC, counts and ledger head match the content, and every
    record decrypts (with FERNET_KEYS) and parses. Returns the manifest."""
    path = Path(path)
    if not path.exists():
        raise BackupError(f"{path}: file not found")
    counts: dict[str, int] = {}
    first_unreadable: Unreadable | None = None
    last_entry = None
    for kind, item in _records(path):
        if kind == "record":
            counts[item[0]] = counts.get(item[0], 0) + 1
            if first_unreadable is None and isinstance(item[2], Unreadable):
                first_unreadable = item[2]
            elif item[0] == "ledger_entries" and isinstance(item[2], dict) and item[2].get("seq") is not None:
                last_entry = (item[2]["seq"], item[2].get("hash"))
            continue
        manifest = item
        _check_manifest(manifest)
        _check_authentication(manifest, allow_unauthenticated=allow_unauthenticated)
        declared = manifest.get("counts", {})
        for name in declared:
            if declared[name] != counts.get(name, 0):
                raise BackupError(f"section {name!r} holds {counts.get(name, 0)} records, the manifest says "
                                  f"{declared[name]}")
        if first_unreadable is not None:
            raise BackupError(first_unreadable.message)
        _check_ledger_head(manifest, last_entry, "ledger_entries" in declared)
        manifest.pop("_computed_sha256")
        manifest.pop("_layout_version")
        return manifest
    raise BackupError("no manifest")  # unreachable: _records raises first


def restore_backup(path: str | Path, *, allow_unauthenticated: bool = False) -> dict[str, int]:
    """Restore everything in one transaction, after check_backup's pass (hash, MAC, counts,
    ledger head); verify every restored chain and the whole ledger; anchor the restored head
    after the commit. On any problem raise BackupError with nothing changed. Returns rows
    inserted per section."""
    path = Path(path)
    manifest = check_backup(path, allow_unauthenticated=allow_unauthenticated)
    restorers = {s.name: s.restore for s in SECTIONS}
    inserted = {s.name: 0 for s in SECTIONS}
    with transaction.atomic():
        # Every restored workflow is verified in memory as it is inserted; rows that were
        # there before were not, so only then does the whole database get verified again.
        had_workflows = WorkflowInstance.objects.exists()
        pending: list[dict] = []
        current = None
        for kind, item in _records(path):
            if kind == "manifest":  # the file could have changed since the first pass
                _check_manifest(item)
                break
            name, _, record = item
            if isinstance(record, Unreadable):  # only if the keys or the file changed since the first pass
                raise BackupError(record.message)
            if name != current or len(pending) >= BATCH:
                if pending:
                    inserted[current] += _restore_batch(restorers[current], current, pending)
                pending, current = [], name
            pending.append(record)
        if pending:
            inserted[current] += _restore_batch(restorers[current], current, pending)
        for report in DurableWorkflowEngine().verify_all() if had_workflows else ():
            if not report.is_valid:
                raise BackupError(_chain_refusal(report))
        _settle_ledger(recorded="ledger_entries" in manifest["counts"])
        rebuild_replay_packs()  # derived from the restored decisions, not in the backup (issue 15 item 6)
        emit(Event.BACKUP_RESTORED, actor="aegis-restore", subject=path.name, data={"inserted": inserted})
        transaction.on_commit(forget_newest)  # restored versions are bulk-inserted: no signal
        transaction.on_commit(_anchor_restored_head)
    return inserted


def _restore_batch(restore, section: str, records: list[dict[str, Any]]) -> int:
    """A batch restored, a row that collides with another (a record duplicated in the file,
    or a stored row under the same key) refused in one line."""
    try:
        with transaction.atomic():
            return restore(records)
    except IntegrityError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BackupError(f"section {section!r}: a record collides with another one ({reason}): a record "
                          "duplicated in the file, or a row stored here under the same key") from None


def _settle_ledger(*, recorded: bool) -> None:
    """A file from before the ledger records what it restored; then the ledger must verify
    against everything stored, or nothing is restored."""
    if not recorded:
        record_many(list(unrecorded()))
    chain_pending()
    for finding in verify_ledger():
        raise BackupError(f"after restoring, {finding.message}; restore refused")


def _reset_sequences(model=Decision) -> None:
    """Decisions and accounts are restored under their own pks: PostgreSQL's sequence must
    move past them before the next row draws from it."""
    statements = connection.ops.sequence_reset_sql(no_style(), [model])
    if statements:
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)


def _anchor_restored_head() -> None:
    """A restore is the operator's deliberate act (and its file authenticated): the restored
    ledger is what later verifications are checked against."""
    if anchors.anchor_key() is not None:
        anchors.write_anchor(*chained_head())
