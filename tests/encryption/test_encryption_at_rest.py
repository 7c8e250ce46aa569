"""PII encrypted at rest (PLATFORM.md §7): what the database holds, what comes back.

1. Real writes through the app (REST API, pages, services) with distinctive markers in
   every PII column, then every cell of every table read with raw SQL: no marker may occur
   outside the few plaintext columns listed (and justified) in ALLOWED_PLAINTEXT, while
   the ORM reads every value back unchanged.
2. The value_type discriminator: str / bytes / json values come back with the same type
   and value through a real save and a fresh read; a value of the wrong type is refused.
3. Keys: a wrong key is a DecryptionError naming the field and FERNET_KEYS (never the
   ciphertext); no keys is ImproperlyConfigured; with several keys the first encrypts and
   all decrypt.
4. Audit-chain verification reports an undecryptable value as a broken chain ("cannot
   decrypt", with its seq) instead of raising.
5. The encrypting migrations keep existing plaintext rows (and their chains valid), and
   can be reversed with rows present.

tests/ has no packages (helper modules are imported by their unique names), so this
directory has no __init__.py either, and its helpers live in this module.
"""

from __future__ import annotations

import base64
import importlib
import json
import uuid
from datetime import timedelta
from typing import Any, Iterable

from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.apps import apps as django_apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.test import Client, TestCase
from django.test.utils import override_settings
from django.utils import timezone
from fernet_fields.hkdf import derive_fernet_key

from attestations.keys import generate_pair
from calibration import versions
from calibration.models import CalibrationProposal, ConfigurationVersion
from governance import services as governance_services
from governance.engine.inputs import parse_proposal
from governance.fields import (DecryptionError, EncryptedField, Undecryptable, current_ciphers, decode_value,
                               encode_value, undecryptable_as_marker)
from governance.models import Decision, DriftBaseline, IdempotencyRecord, TelemetryEvent, Tier
from workflows import services as workflow_services
from workflows.chain import checkpoint_hash, transition_hash
from workflows.machines import Actor
from workflows.persistence.durable import DurableWorkflowEngine
from workflows.persistence.models import GENESIS_HASH, WorkflowCheckpoint, WorkflowInstance, WorkflowTransition
from workflows.roles import RISK_LEAD_GROUP, SECURITY_LEAD_GROUP, Role
from workflows.serialization import utc_iso
from workflows.snapshot import checkpoint_data_of

TRANSITIONS = "workflows_workflowtransition"
APPEND_ONLY = importlib.import_module("workflows.migrations.0005_encrypt_pii")

# Every encrypted column of the project. test_every_encrypted_column_is_covered fails when
# one is added (or removed) without this list, and so without the checks below.
ENCRYPTED_COLUMNS = {
    ("governance.Decision", "proposal_summary"), ("governance.Decision", "agent_id"),
    ("governance.Decision", "session_id"), ("governance.Decision", "metadata"),
    ("governance.TelemetryEvent", "actor"), ("governance.TelemetryEvent", "data"),
    ("governance.DriftBaseline", "created_by"), ("governance.IdempotencyRecord", "response_body"),
    ("workflows.WorkflowInstance", "state_data"),
    ("workflows.WorkflowTransition", "triggered_by"), ("workflows.WorkflowTransition", "reason"),
    ("workflows.WorkflowTransition", "payload"),
    ("workflows.WorkflowCheckpoint", "checkpoint_data"), ("workflows.WorkflowCheckpoint", "created_by"),
    ("calibration.CalibrationProposal", "justification"), ("calibration.CalibrationProposal", "proposed_by"),
    ("calibration.ConfigurationVersion", "author"),
    ("notifications.NotificationEvent", "payload"),
    ("attestations.SigningKeyPair", "ed25519_seed"), ("attestations.SigningKeyPair", "mldsa65_seed"),
}

KEY_A = "encryption-test-key-A-3d1f0c5e9b"
KEY_B = "encryption-test-key-B-8a62e47d10"


@pytest.fixture(autouse=True)
def _fresh_caches():
    """Rate limits live in the cache; built configurations are cached per version number,
    and a rolled-back test database reuses numbers (this module applies a calibration)."""
    cache.clear()
    versions._built.clear()
    yield
    cache.clear()
    versions._built.clear()


# --- raw database reading -----------------------------------------------------------------------

def as_bytes(value: Any) -> bytes:
    """A cell as bytes, the way a search of a database dump would see it."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (dict, list)):  # a JSON column a driver decoded
        return json.dumps(value, ensure_ascii=False).encode("utf-8")
    return str(value).encode("utf-8")


def raw_cells() -> list[tuple[str, str, bytes]]:
    """(table, column, cell as bytes) of every non-NULL cell of every table, read with raw SQL."""
    cells = []
    with connection.cursor() as cursor:
        for table in sorted(connection.introspection.table_names()):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            columns = [column[0].lower() for column in cursor.description]
            for row in cursor.fetchall():
                cells.extend((table, column, as_bytes(value)) for column, value in zip(columns, row)
                             if value is not None)
    return cells


def encodings(marker: str) -> list[bytes]:
    """The marker as UTF-8, and the stable middle of its base64 / urlsafe-base64 forms at
    each of the three alignments (so a value stored base64-encoded but not encrypted is
    found too)."""
    raw = marker.encode("utf-8")
    forms = [raw]
    for pad in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(b"\0" * pad + raw)
            forms.append(text[4 if pad else 0:-4])
    assert all(len(form) >= 12 for form in forms), marker  # long enough not to match by chance
    return forms


def locations(marker: str, cells: Iterable[tuple[str, str, bytes]]) -> set[tuple[str, str]]:
    forms = encodings(marker)
    return {(table, column) for table, column, cell in cells if any(form in cell for form in forms)}


def raw_column(model, field_name: str) -> list[bytes]:
    """The non-NULL stored cells of one column, as bytes."""
    table = connection.ops.quote_name(model._meta.db_table)
    column = connection.ops.quote_name(model._meta.get_field(field_name).column)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL")
        return [as_bytes(row[0]) for row in cursor.fetchall()]


def write_raw(model, field_name: str, pk: int, value: Any) -> None:
    table = connection.ops.quote_name(model._meta.db_table)
    column = connection.ops.quote_name(model._meta.get_field(field_name).column)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET {column} = %s WHERE id = %s", [value, pk])


def drop_append_only_triggers() -> None:
    """Inside the test's transaction (rolled back with it, DDL included, on both databases)."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(f"DROP TRIGGER {TRANSITIONS}_no_update")
            cursor.execute(f"DROP TRIGGER {TRANSITIONS}_no_delete")
        else:
            cursor.execute(f"DROP TRIGGER {TRANSITIONS}_append_only ON {TRANSITIONS}")


def encrypted_fields() -> set[tuple[str, str]]:
    return {(model._meta.label, field.name) for model in django_apps.get_models()
            for field in model._meta.concrete_fields if isinstance(field, EncryptedField)}


# --- HTTP and actors -------------------------------------------------------------------------------

class Https(Client):
    """The test client over HTTPS (production settings redirect plain http), JSON bodies."""

    def __init__(self, user=None, bearer: str | None = None):
        super().__init__()
        self.bearer = bearer
        if user is not None:
            self.force_login(user)

    def json(self, path: str, body: Any = None, *, headers: dict[str, str] | None = None):
        headers = dict(headers or {})
        if self.bearer:
            headers["Authorization"] = f"Bearer {self.bearer}"
        return self.post(path, json.dumps({} if body is None else body), content_type="application/json",
                         secure=True, headers=headers)

    def read(self, path: str):
        headers = {"Authorization": f"Bearer {self.bearer}"} if self.bearer else {}
        return self.get(path, secure=True, headers=headers)


def make_user(username: str, *groups: str):
    user = get_user_model().objects.create_user(username, password=None)  # no hashing: force_login
    for name in groups:
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    return user


def team_tier() -> Tier:
    tier, _ = Tier.objects.get_or_create(name="team", defaults={
        "display_name": "Team", "monthly_evaluations": 100_000, "rate_per_minute": 600, "max_keys": 10,
        "features": ["evaluate", "risk-check", "calibration", "workflows"]})
    return tier


def ok(response, status: int = 200):
    assert response.status_code == status, (response.status_code, response.content[:2000])
    return response.json() if response["Content-Type"].startswith("application/json") else response


# =============================================================================================
# 1. Raw rows hold no plaintext, for every PII column
# =============================================================================================

TAG = "7f3a"
M = {  # one distinctive marker per kind of PII
    "summary": f"PII-summary-{TAG}-evaluate",
    "agent": f"PII-agent-{TAG}-evaluate",
    "session": f"PII-session-{TAG}-evaluate",
    "meta": f"PII-meta-{TAG}-owner",
    "meta_nested": f"PII-meta-{TAG}-nested",
    "wf_summary": f"PII-summary-{TAG}-workflow",
    "wf_agent": f"PII-agent-{TAG}-workflow",
    "wf_session": f"PII-session-{TAG}-workflow",
    "wf_meta": f"PII-meta-{TAG}-workflow",
    "reject_reason": f"PII-reject-reason-{TAG}",
    "override_justification": f"PII-override-justification-{TAG}",
    "override_approve_1": f"PII-override-approval-{TAG}-risk",
    "override_approve_2": f"PII-override-approval-{TAG}-security",
    "override_justification_2": f"PII-override-justification-{TAG}-second",
    "override_reject_reason": f"PII-override-reject-reason-{TAG}",
    "consensus_subject": f"PII-consensus-subject-{TAG}",
    "vote_comment": f"PII-vote-comment-{TAG}",
    "justification": f"PII-justification-{TAG}-calibration",
    "cal_approve_comment": f"PII-cal-approve-comment-{TAG}",
    "justification_2": f"PII-justification-{TAG}-rejected",
    "cal_reject_reason": f"PII-cal-reject-reason-{TAG}",
}
# People: their names are PII wherever the app records who did something.
USERS = {
    "submitter": f"pii_nina_{TAG}_submitter",
    "risk": f"pii_rita_{TAG}_risklead",
    "security": f"pii_sam_{TAG}_securitylead",
    "reviewer": f"pii_ann_{TAG}_reviewer",
    "proposer": f"pii_alice_{TAG}_proposer",
    "approver": f"pii_bob_{TAG}_approver",
}
# A tenant's name is not one of PLATFORM.md §7's PII fields: stored in plain, it is the
# positive control showing that the search finds what is there.
CONTROL_TENANT = f"PII-control-tenant-{TAG}"

# The only places where a marker may be stored in plain, and why:
#  - auth_user.username: the account table holds each user's own login name (it has to, to
#    sign them in); it is not a store of PII *about* an action. Who did what (triggered_by,
#    proposed_by, actor, custodian_id, approver_id, requested_by, ...) is encrypted everywhere.
ALLOWED_PLAINTEXT = {name: {("auth_user", "username")} for name in USERS.values()}
ALLOWED_PLAINTEXT[CONTROL_TENANT] = {("governance_customer", "name")}

# Which marker each encrypted column must hold (read back through the ORM), so that the
# raw search below cannot pass because a column was never written.
EXPECTED_IN_COLUMN = {
    ("governance.Decision", "proposal_summary"): M["summary"],
    ("governance.Decision", "agent_id"): M["agent"],
    ("governance.Decision", "session_id"): M["session"],
    ("governance.Decision", "metadata"): M["meta_nested"],
    ("governance.TelemetryEvent", "actor"): M["agent"],  # decision.made is by the agent
    ("governance.TelemetryEvent", "data"): M["cal_approve_comment"],  # calibration.approved's comment
    ("governance.DriftBaseline", "created_by"): USERS["risk"],
    ("governance.IdempotencyRecord", "response_body"): "NEW_KEY",  # filled in with the new key's plaintext
    ("workflows.WorkflowInstance", "state_data"): M["override_justification"],
    ("workflows.WorkflowTransition", "triggered_by"): USERS["submitter"],
    ("workflows.WorkflowTransition", "reason"): M["reject_reason"],
    ("workflows.WorkflowTransition", "payload"): USERS["security"],  # the custodian_id of an approval
    ("workflows.WorkflowCheckpoint", "checkpoint_data"): M["wf_summary"],
    ("workflows.WorkflowCheckpoint", "created_by"): USERS["reviewer"],
    ("calibration.CalibrationProposal", "justification"): M["justification"],
    ("calibration.CalibrationProposal", "proposed_by"): USERS["proposer"],
    ("calibration.ConfigurationVersion", "author"): USERS["approver"],
    ("notifications.NotificationEvent", "payload"): M["wf_summary"],  # a review's notification
    ("attestations.SigningKeyPair", "ed25519_seed"): "SEED",  # filled in with the generated pair's seeds (hex)
    ("attestations.SigningKeyPair", "mldsa65_seed"): "SEED",
}

BASE_PROPOSAL = {"risk_baseline": 0.02, "risk_proposed": 0.05, "profit_baseline": 0.98, "profit_proposed": 0.98,
                 "complexity_score": 0.8, "quality_score": 0.85}
ESCALATE = {**BASE_PROPOSAL, "estimated_impact": "high", "novelty_score": 0.9}  # fails novelty, high impact
PAUSE = {**BASE_PROPOSAL, "estimated_impact": "high", "novelty_score": 0.5}


def drive_the_app() -> dict[str, Any]:
    """Every kind of PII write the app does, through its API, pages and services."""
    facts: dict[str, Any] = {}
    customer, _key, first_key = governance_services.create_customer(CONTROL_TENANT, tier=team_tier())
    facts["customer"], facts["first_key"] = customer, first_key
    users = {
        "submitter": make_user(USERS["submitter"]),
        "risk": make_user(USERS["risk"], RISK_LEAD_GROUP),
        "security": make_user(USERS["security"], SECURITY_LEAD_GROUP),
        "reviewer": make_user(USERS["reviewer"]),
        "proposer": make_user(USERS["proposer"], RISK_LEAD_GROUP),
        "approver": make_user(USERS["approver"], RISK_LEAD_GROUP),
    }
    tenant = Https(bearer=first_key)

    # POST /evaluate with an Idempotency-Key, twice (the second is a replay).
    body = {**BASE_PROPOSAL, "proposal_summary": M["summary"], "estimated_impact": "low", "novelty_score": 0.5,
            "agent_id": M["agent"], "session_id": M["session"],
            "metadata": {"owner": M["meta"], "nested": [{"who": M["meta_nested"], "n": 1.5}]}}
    first = ok(tenant.json("/evaluate", body, headers={"Idempotency-Key": f"idem-evaluate-{TAG}"}))
    again = tenant.json("/evaluate", body, headers={"Idempotency-Key": f"idem-evaluate-{TAG}"})
    assert ok(again) == first and again["X-AEGIS-Idempotent-Replayed"] == "true"
    facts["decision_id"] = first["decision_id"]

    # POST /customer/keys with an Idempotency-Key: the stored outcome holds the new key's plaintext.
    created = ok(tenant.json("/customer/keys", {"name": "second key"}, headers={"Idempotency-Key": f"idem-key-{TAG}"}),
                 201)
    facts["new_key"] = created["key"]

    # Workflows over /api/workflows, signed in.
    submitter, risk, security = Https(users["submitter"]), Https(users["risk"]), Https(users["security"])
    wf_body = {**PAUSE, "proposal_summary": M["wf_summary"], "agent_id": M["wf_agent"],
               "session_id": M["wf_session"], "metadata": {"owner": M["wf_meta"]}}
    paused = ok(submitter.json("/api/workflows/proposals", wf_body), 201)
    assert paused["current_state"] == "in_review", paused
    rejected = ok(risk.json(f"/api/workflows/{paused['workflow_id']}/events/reject", {"comment": M["reject_reason"]}))
    assert rejected["current_state"] == "rejected"
    facts["paused"] = paused["workflow_id"]

    # An override requested, approved by both custodians (the proposal is then approved) ...
    escalated = ok(submitter.json("/api/workflows/proposals", {**ESCALATE, "proposal_summary": M["wf_summary"]}), 201)
    assert escalated["current_state"] == "in_review", escalated
    ok(risk.json(f"/api/workflows/{escalated['workflow_id']}/events/request_override",
                 {"comment": M["override_justification"]}))
    override_id = WorkflowInstance.objects.get(workflow_id=escalated["workflow_id"]).state_data["override_workflow_id"]
    ok(risk.json(f"/api/workflows/{override_id}/events/approve",
                 {"comment": M["override_approve_1"], "params": {"role": Role.RISK_LEAD}}))
    done = ok(security.json(f"/api/workflows/{override_id}/events/approve",
                            {"comment": M["override_approve_2"], "params": {"role": Role.SECURITY_LEAD}}))
    assert done["current_state"] == "approved", done
    assert WorkflowInstance.objects.get(workflow_id=escalated["workflow_id"]).current_state == "approved"
    facts["override"] = override_id

    # ... and one requested and rejected (the proposal is then rejected).
    second = ok(submitter.json("/api/workflows/proposals", {**ESCALATE, "proposal_summary": M["wf_summary"]}), 201)
    ok(security.json(f"/api/workflows/{second['workflow_id']}/events/request_override",
                     {"comment": M["override_justification_2"]}))
    second_override = WorkflowInstance.objects.get(workflow_id=second["workflow_id"]).state_data["override_workflow_id"]
    denied = ok(risk.json(f"/api/workflows/{second_override}/events/reject", {"comment": M["override_reject_reason"]}))
    assert denied["current_state"] == "rejected"
    assert WorkflowInstance.objects.get(workflow_id=second["workflow_id"]).current_state == "rejected"

    # A consensus vote.
    vote = ok(submitter.json("/api/workflows/consensus", {
        "subject": M["consensus_subject"], "reviewers": [USERS["reviewer"]], "quorum": 1, "approval_threshold": 0.5,
        "deadline": utc_iso(timezone.now() + timedelta(days=2))}), 201)
    voted = ok(Https(users["reviewer"]).json(f"/api/workflows/{vote['workflow_id']}/events/vote",
                                             {"comment": M["vote_comment"], "params": {"vote": "approve"}}))
    assert voted["current_state"] == "approved"
    facts["consensus"] = vote["workflow_id"]

    # Calibration over /api/calibration: one proposal rejected, one approved and applied.
    proposer, approver = Https(users["proposer"]), Https(users["approver"])
    to_reject = ok(proposer.json("/api/calibration/proposals", {
        "parameter": "complexity_floor", "new_value": 0.6, "justification": M["justification_2"]}), 201)
    ok(approver.json(f"/api/calibration/proposals/{to_reject['proposal_id']}/reject",
                     {"comment": M["cal_reject_reason"]}))
    to_apply = ok(proposer.json("/api/calibration/proposals", {
        "parameter": "novelty_threshold", "new_value": 0.9, "justification": M["justification"]}), 201)
    ok(approver.json(f"/api/calibration/proposals/{to_apply['proposal_id']}/approve",
                     {"comment": M["cal_approve_comment"]}))
    applied = ok(approver.json(f"/api/calibration/proposals/{to_apply['proposal_id']}/apply"))
    assert applied["status"] == "APPLIED", applied
    facts["proposal"] = to_apply["proposal_id"]

    # A drift baseline uploaded on the drift page by a risk lead.
    values = "\n".join(f"{0.05 + 0.001 * i:.3f}" for i in range(60)).encode()
    response = Https(users["risk"]).post(f"/drift/{customer.customer_id}/baseline/upload/",
                                         {"file": SimpleUploadedFile("baseline.csv", values)}, secure=True)
    assert response.status_code == 302, response.content[:500]
    assert DriftBaseline.objects.filter(customer=customer).count() == 1

    # A proposal left waiting for review: its notification, stored once the request commits, quotes its summary.
    with TestCase.captureOnCommitCallbacks(execute=True):
        ok(submitter.json("/api/workflows/proposals", {**PAUSE, "proposal_summary": M["wf_summary"]}), 201)

    # An attestation signing pair, whose private seeds are secrets like PII.
    pair = generate_pair()
    facts["ed25519_seed"], facts["mldsa65_seed"] = bytes(pair.ed25519_seed).hex(), bytes(pair.mldsa65_seed).hex()
    return facts


def column_values(label: str, field: str) -> list[Any]:
    model = django_apps.get_model(label)
    return list(model.objects.values_list(field, flat=True))


def test_every_encrypted_column_is_covered():
    assert encrypted_fields() == ENCRYPTED_COLUMNS
    assert set(EXPECTED_IN_COLUMN) == ENCRYPTED_COLUMNS


@pytest.mark.django_db
def test_raw_rows_hold_no_plaintext_pii_in_any_table():
    facts = drive_the_app()
    expected = {**EXPECTED_IN_COLUMN, ("governance.IdempotencyRecord", "response_body"): facts["new_key"],
                ("attestations.SigningKeyPair", "ed25519_seed"): facts["ed25519_seed"],
                ("attestations.SigningKeyPair", "mldsa65_seed"): facts["mldsa65_seed"]}
    secrets = {**M, **{f"user:{k}": v for k, v in USERS.items()}, "control": CONTROL_TENANT,
               "new_key": facts["new_key"], "first_key": facts["first_key"],
               "ed25519_seed": facts["ed25519_seed"], "mldsa65_seed": facts["mldsa65_seed"]}

    # Every encrypted column was written with its marker, and the ORM reads it back.
    for (label, field), marker in sorted(expected.items()):
        values = column_values(label, field)
        assert values, f"no {label} rows: the app wrote nothing to {label}.{field}"
        readable = json.dumps(values, ensure_ascii=False, default=lambda v: v.hex() if isinstance(v, bytes) else str(v))
        assert marker in readable, f"{label}.{field} does not hold {marker!r} when read through the ORM"

    cells = raw_cells()
    assert len({table for table, _, _ in cells}) > 10 and len(cells) > 500, "the raw read found (almost) nothing"

    # What the raw read finds in each encrypted column is a Fernet token, of the field's
    # value_type, under the first key: not the plaintext, and not an empty or NULL column.
    multi, first = current_ciphers()
    for label, field in sorted(ENCRYPTED_COLUMNS):
        model = django_apps.get_model(label)
        stored = raw_column(model, field)
        assert stored, f"{label}.{field}: no non-NULL cell in the table"
        declared = model._meta.get_field(field).value_type
        for cell in stored:
            assert cell.startswith(b"gAAAAA"), (label, field, cell[:40])
            assert first.decrypt(cell).startswith(declared.encode() + b":"), (label, field)

    # The search itself works: the controls are found where they are stored in plain.
    assert ("governance_customer", "name") in locations(CONTROL_TENANT, cells)
    assert ("auth_user", "username") in locations(USERS["risk"], cells)

    # No marker anywhere else.
    leaks = {}
    for name, marker in sorted(secrets.items()):
        found = locations(marker, cells) - ALLOWED_PLAINTEXT.get(marker, set())
        if found:
            leaks[name] = sorted(found)
    assert not leaks, f"plaintext PII in the database: {leaks}"

    # And the app still shows the values (decrypted) where it shows them.
    decision = Decision.objects.get(decision_id=facts["decision_id"])
    assert (decision.proposal_summary, decision.agent_id, decision.session_id) == (
        M["summary"], M["agent"], M["session"])
    assert decision.metadata == {"owner": M["meta"], "nested": [{"who": M["meta_nested"], "n": 1.5}]}
    assert IdempotencyRecord.objects.get(key=f"idem-key-{TAG}").response_body["key"] == facts["new_key"]
    assert DriftBaseline.objects.get().created_by == USERS["risk"]
    detail = ok(Https(get_user_model().objects.get(username=USERS["risk"])).read(f"/api/workflows/{facts['paused']}"))
    assert [(t["triggered_by"], t["reason"]) for t in detail["transitions"]] == [
        (USERS["submitter"], ""), ("aegis-engine", ""), (USERS["risk"], M["reject_reason"])]
    assert detail["state_data"]["proposal"]["proposal_summary"] == M["wf_summary"]
    assert detail["state_data"]["proposal"]["metadata"] == {"owner": M["wf_meta"]}
    override = WorkflowInstance.objects.get(workflow_id=facts["override"]).state_data
    assert override["justification"] == M["override_justification"] and override["requested_by"] == USERS["risk"]
    assert [a["custodian_id"] for a in override["approvals"]] == [USERS["risk"], USERS["security"]]
    proposal = CalibrationProposal.objects.get(proposal_id=facts["proposal"])
    assert (proposal.justification, proposal.proposed_by) == (M["justification"], USERS["proposer"])
    assert proposal.applied_version.author == USERS["approver"]
    made = TelemetryEvent.objects.filter(name="decision.made", subject=facts["decision_id"]).get()
    assert made.actor == M["agent"]
    # Every workflow written here still verifies (the chain covers the plaintext).
    reports = list(DurableWorkflowEngine().verify_all())
    assert len(reports) >= 8 and all(r.is_valid for r in reports), [r for r in reports if not r.is_valid]


# =============================================================================================
# 2. value_type round trips
# =============================================================================================

UNICODE = ("emoji 🎉👩‍👩‍👧‍👦🏳️‍🌈 | RTL שלום עולם مرحبا بالعالم | combining e\u0301 a\u0308 (not normalised) vs é | "
           "zero-width [\u200b\u200d] | CJK 漢字かな | NUL [\x00] | tab\t newline\n CR\r | "
           "look-alikes json:{} bytes:AA== str:")
LONG = ("0123456789 abcdef αβγδ 🎉 שלום\n" * 40_000)[:1_000_000]
NESTED = {
    "list": [{"inner": {"ü-schlüssel": 1.5, "none": None, "true": True, "false": False, "zero": 0, "neg": -2.25,
                        "big": 2 ** 63 + 1, "tiny": 5e-324, "tenth": 0.1, "exp": 1e300}}, [], {}, [[[]]]],
    "emoji 🎉": ["x", 0.1, None], "": "", "עברית": {"nested": {"deeper": [1, 2.0, "3"]}},
}


def same(a: Any, b: Any, *, key_order: bool = True) -> bool:
    """Equal, with the same types all the way down (1 is not 1.0, True is not 1) and, unless
    key_order is False, the same key order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        keys_match = list(a) == list(b) if key_order else sorted(a) == sorted(b)
        return keys_match and all(same(a[k], b[k], key_order=key_order) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y, key_order=key_order) for x, y in zip(a, b))
    return a == b


@pytest.mark.django_db
@pytest.mark.parametrize("field, value", [
    ("actor", UNICODE), ("actor", ""), ("actor", LONG), ("actor", "json:[1]"),
    ("data", NESTED), ("data", {}), ("data", []), ("data", "a JSON string"), ("data", 0), ("data", 2.5),
    ("data", False), ("data", {"long": LONG}),
], ids=["str-unicode", "str-empty", "str-1MB", "str-lookalike", "json-nested", "json-empty-dict",
        "json-empty-list", "json-string", "json-int", "json-float", "json-bool", "json-1MB"])
def test_str_and_json_values_round_trip_through_a_real_save(field, value):
    event = TelemetryEvent.objects.create(name="decision.made", **{field: value})
    fresh = TelemetryEvent.objects.get(pk=event.pk)
    assert same(getattr(fresh, field), value)
    assert same(TelemetryEvent.objects.values_list(field, flat=True).get(pk=event.pk), value)
    stored = raw_column(TelemetryEvent, field)
    assert len(stored) == 1 and stored[0].startswith(b"gAAAAA")
    if isinstance(value, str) and value:
        assert value[:50].encode() not in stored[0]


@pytest.mark.django_db
def test_empty_values_stay_empty_not_null():
    event = TelemetryEvent.objects.create(name="decision.made")  # the defaults: "" and {}
    fresh = TelemetryEvent.objects.get(pk=event.pk)
    assert fresh.actor == "" and isinstance(fresh.actor, str)
    assert fresh.data == {} and isinstance(fresh.data, dict)
    assert TelemetryEvent.objects.filter(pk=event.pk, actor__isnull=False, data__isnull=False).exists()


def bytes_field() -> EncryptedField:
    """No model declares a bytes column today: a free-standing one, attached to a model only
    for the error messages."""
    field = EncryptedField(value_type="bytes")
    field.set_attributes_from_name("blob")
    field.model = WorkflowInstance
    return field


@pytest.mark.django_db
@pytest.mark.parametrize("value", [b"\xff\x00\xfe", b"", bytes(range(256)) * 4, b"str:not text \xc3\x28",
                                   bytearray(b"\x80\x81"), memoryview(b"\x00\x01\x02")],
                         ids=["non-utf8", "empty", "all-bytes", "lookalike", "bytearray", "memoryview"])
def test_bytes_round_trip_through_the_database(value):
    field = bytes_field()
    host = WorkflowInstance.objects.create(workflow_type="proposal", current_state="submitted", status="pending")
    write_raw(WorkflowInstance, "state_data", host.pk, field.get_db_prep_save(value, connection))
    [stored] = raw_column(WorkflowInstance, "state_data")
    assert stored.startswith(b"gAAAAA")
    back = field.from_db_value(stored, None, connection)
    assert type(back) is bytes and back == bytes(value)


def test_encode_and_decode_keep_type_and_value():
    for value, value_type in [(b"\xff\x00\xfe", "bytes"), (b"", "bytes"), ("", "str"), (UNICODE, "str"),
                              (NESTED, "json"), ({}, "json"), ("str:x", "json")]:
        encoded = encode_value(value, value_type)
        assert encoded.startswith(value_type.encode() + b":")
        assert same(decode_value(encoded), value if not isinstance(value, bytes) else bytes(value))
    with pytest.raises(DecryptionError, match="unknown value_type"):
        decode_value(b"pickle:...")


@pytest.mark.django_db
@pytest.mark.parametrize("field, value, message", [
    ("actor", b"bytes", "expected str, got bytes"),
    ("actor", 42, "expected str, got int"),
    ("actor", {"a": 1}, "expected str, got dict"),
])
def test_a_value_of_the_wrong_type_is_refused_naming_the_expected_type(field, value, message):
    before = TelemetryEvent.objects.count()
    with pytest.raises(TypeError, match=message):
        with transaction.atomic():
            TelemetryEvent.objects.create(name="decision.made", **{field: value})
    assert TelemetryEvent.objects.count() == before


def test_bytes_field_refuses_text_and_json_field_refuses_what_json_cannot_hold():
    with pytest.raises(TypeError, match="expected bytes, got str"):
        bytes_field().get_db_prep_save("text", connection)
    json_field = TelemetryEvent._meta.get_field("data")
    with pytest.raises(TypeError):
        json_field.get_db_prep_save({"a set": {1, 2}}, connection)
    with pytest.raises(ValueError):
        json_field.get_db_prep_save({"nan": float("nan")}, connection)
    with pytest.raises(ImproperlyConfigured, match="value_type"):
        EncryptedField(value_type="pickle")


# =============================================================================================
# 3. Keys
# =============================================================================================

def new_event(actor: str) -> TelemetryEvent:
    return TelemetryEvent.objects.create(name="decision.made", actor=actor, data={"who": actor})


def read_actor(pk: int) -> str:
    return TelemetryEvent.objects.values_list("actor", flat=True).get(pk=pk)


@pytest.mark.django_db
def test_a_wrong_key_raises_a_decryption_error_naming_the_field_and_fernet_keys():
    secret = f"PII-wrong-key-{TAG}"
    with override_settings(FERNET_KEYS=[KEY_A]):
        event = new_event(secret)
        workflow = governance_services.submit_proposal(parse_proposal({"proposal_summary": secret}),
                                                     actor=Actor(f"pii_wrongkey_{TAG}"))
    token = dict(zip(*_pks_and_tokens()))[event.pk]

    with override_settings(FERNET_KEYS=[KEY_B]):
        for read, where in [
            (lambda: TelemetryEvent.objects.get(pk=event.pk), "governance.TelemetryEvent.actor"),
            (lambda: read_actor(event.pk), "governance.TelemetryEvent.actor"),
            (lambda: TelemetryEvent.objects.values("data").get(pk=event.pk), "governance.TelemetryEvent.data"),
            (lambda: list(WorkflowTransition.objects.filter(workflow=workflow).values_list("reason", flat=True)),
             "workflows.WorkflowTransition.reason"),
            (lambda: WorkflowInstance.objects.get(pk=workflow.pk), "workflows.WorkflowInstance.state_data"),
        ]:
            with pytest.raises(DecryptionError) as raised:
                read()
            message = str(raised.value)
            assert where in message and "FERNET_KEYS" in message, message
            assert secret not in message and token.decode() not in message and "gAAAAA" not in message
        # Asked to be told rather than stopped: a marker that names the field, not ciphertext.
        with undecryptable_as_marker():
            value = read_actor(event.pk)
        assert isinstance(value, Undecryptable) and value.where == "governance.TelemetryEvent.actor"
        assert str(value) == "[cannot decrypt]"
        with pytest.raises(DecryptionError):  # the marker does not outlive its block
            read_actor(event.pk)

    with override_settings(FERNET_KEYS=[KEY_A]):
        assert read_actor(event.pk) == secret


@pytest.mark.django_db
@pytest.mark.parametrize("keys", [[], (), ""], ids=["empty-list", "empty-tuple", "empty-string"])
def test_empty_fernet_keys_is_improperly_configured(keys):
    event = new_event("written with the configured keys")
    with override_settings(FERNET_KEYS=keys):
        with pytest.raises(ImproperlyConfigured, match="FERNET_KEYS"), transaction.atomic():
            new_event("cannot be written")
        with pytest.raises(ImproperlyConfigured, match="FERNET_KEYS"):
            read_actor(event.pk)
        with undecryptable_as_marker(), pytest.raises(ImproperlyConfigured, match="FERNET_KEYS"):
            read_actor(event.pk)  # a configuration error is not an "undecryptable value"


@pytest.mark.django_db
@pytest.mark.parametrize("how", ["deleted", "None"])
def test_missing_fernet_keys_is_improperly_configured(how):
    event = new_event("written with the configured keys")
    with override_settings():
        if how == "deleted":
            del settings.FERNET_KEYS
        else:
            settings.FERNET_KEYS = None
        with pytest.raises(ImproperlyConfigured, match="FERNET_KEYS"), transaction.atomic():
            new_event("cannot be written")
        with pytest.raises(ImproperlyConfigured, match="FERNET_KEYS"):
            read_actor(event.pk)


@pytest.mark.django_db
def test_with_several_keys_the_first_encrypts_and_all_decrypt():
    with override_settings(FERNET_KEYS=[KEY_A]):
        old = new_event("written under A")
    with override_settings(FERNET_KEYS=[KEY_B, KEY_A]):
        assert read_actor(old.pk) == "written under A"
        rotated = new_event("written under B, A")
        assert read_actor(rotated.pk) == "written under B, A"
    token = dict(zip(*_pks_and_tokens()))[rotated.pk]
    assert Fernet(derive_fernet_key(KEY_B)).decrypt(token) == b"str:written under B, A"  # the first key
    with override_settings(FERNET_KEYS=[KEY_B]):
        assert read_actor(rotated.pk) == "written under B, A"
        with pytest.raises(DecryptionError):
            read_actor(old.pk)
    with override_settings(FERNET_KEYS=[KEY_A]):
        assert read_actor(old.pk) == "written under A"
        with pytest.raises(DecryptionError, match="governance.TelemetryEvent.actor"):
            read_actor(rotated.pk)


def _pks_and_tokens() -> tuple[list[int], list[bytes]]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, actor FROM governance_telemetryevent ORDER BY id")
        rows = cursor.fetchall()
    return [row[0] for row in rows], [as_bytes(row[1]) for row in rows]


# =============================================================================================
# 4. Chain verification with an undecryptable value
# =============================================================================================

RISK = Actor(f"pii_rita_{TAG}", roles=frozenset({Role.RISK_LEAD}))
OTHER_KEY = "a-key-this-deployment-never-had-0c9e"


def rejected_proposal() -> WorkflowInstance:
    """submitted (1) → in_review (2) → rejected by a risk lead with a reason (3)."""
    workflow = governance_services.submit_proposal(parse_proposal({"proposal_summary": "Bigger change",
                                                                 "estimated_impact": "high"}),
                                                 actor=Actor(f"pii_nina_{TAG}"))
    workflow_services.fire_event(workflow.workflow_id, "reject", actor=RISK, comment=f"PII-reason-{TAG}")
    workflow.refresh_from_db()
    assert workflow.version == 3 and workflow.current_state == "rejected"
    return workflow


def corrupted(model, field: str, pk: int, how: str) -> Any:
    """The stored value replaced by garbage, or by the same plaintext under another key."""
    if how == "garbage":
        return b"\xff\x00not a fernet token\xfe"
    plaintext = model.objects.values_list(field, flat=True).get(pk=pk)
    with override_settings(FERNET_KEYS=[OTHER_KEY]):
        return model._meta.get_field(field).get_db_prep_save(plaintext, connection)


def reports_by_id() -> dict[str, Any]:
    return {report.workflow_id: report for report in DurableWorkflowEngine().verify_all()}


@pytest.mark.django_db
@pytest.mark.parametrize("how", ["garbage", "other-key"])
@pytest.mark.parametrize("field, seq", [("reason", 3), ("triggered_by", 2), ("payload", 1)])
def test_an_undecryptable_transition_is_a_broken_chain_not_an_exception(field, seq, how):
    workflow, untouched = rejected_proposal(), rejected_proposal()
    assert DurableWorkflowEngine().report(workflow.workflow_id).is_valid
    target = WorkflowTransition.objects.get(workflow=workflow, seq=seq)
    drop_append_only_triggers()
    write_raw(WorkflowTransition, field, target.pk, corrupted(WorkflowTransition, field, target.pk, how))

    report = DurableWorkflowEngine().report(workflow.workflow_id)
    assert not report.is_valid
    assert report.message.startswith(f"seq {seq}: cannot decrypt"), report.message
    assert report.broken_seq == seq
    assert DurableWorkflowEngine().verify_audit_chain(workflow.workflow_id) == (False, report.message)
    everything = reports_by_id()
    assert everything[str(workflow.workflow_id)].message == report.message
    assert everything[str(untouched.workflow_id)].is_valid
    # Outside verification, reading the value is still an error, never ciphertext.
    with pytest.raises(DecryptionError, match=f"workflows.WorkflowTransition.{field}"):
        WorkflowTransition.objects.values_list(field, flat=True).get(pk=target.pk)


@pytest.mark.django_db
@pytest.mark.parametrize("how", ["garbage", "other-key"])
@pytest.mark.parametrize("seq", [1, 3])
def test_an_undecryptable_checkpoint_is_a_broken_chain_not_an_exception(seq, how):
    workflow, untouched = rejected_proposal(), rejected_proposal()
    target = WorkflowCheckpoint.objects.get(workflow=workflow, seq=seq)
    write_raw(WorkflowCheckpoint, "checkpoint_data", target.pk,
              corrupted(WorkflowCheckpoint, "checkpoint_data", target.pk, how))

    report = DurableWorkflowEngine().report(workflow.workflow_id)
    assert (report.is_valid, report.message, report.broken_seq) == (
        False, f"seq {seq}: cannot decrypt its checkpoint", seq)
    everything = reports_by_id()
    assert everything[str(workflow.workflow_id)].message == report.message
    assert everything[str(untouched.workflow_id)].is_valid


@pytest.mark.django_db
def test_an_undecryptable_workflow_state_is_a_broken_chain_not_an_exception():
    workflow = rejected_proposal()
    write_raw(WorkflowInstance, "state_data", workflow.pk,
              corrupted(WorkflowInstance, "state_data", workflow.pk, "other-key"))
    report = DurableWorkflowEngine().report(workflow.workflow_id)
    assert (report.is_valid, report.message, report.broken_seq) == (
        False, "seq 3: cannot decrypt the workflow's state", 3)
    assert reports_by_id()[str(workflow.workflow_id)].message == report.message


@pytest.mark.django_db
def test_the_verify_api_reports_an_undecryptable_transition():
    workflow = rejected_proposal()
    target = WorkflowTransition.objects.get(workflow=workflow, seq=3)
    drop_append_only_triggers()
    write_raw(WorkflowTransition, "reason", target.pk, corrupted(WorkflowTransition, "reason", target.pk, "garbage"))
    client = Https(make_user(f"pii_verifier_{TAG}"))
    body = ok(client.json(f"/api/workflows/{workflow.workflow_id}/verify"))
    assert (body["is_valid"], body["broken_seq"]) == (False, 3)
    assert body["message"].startswith("seq 3: cannot decrypt"), body


# =============================================================================================
# 5. The encrypting migrations keep existing data
# =============================================================================================

BEFORE_ENCRYPTION = [("governance", "0007_decision_drift_index"), ("workflows", "0004_default_schedules"),
                     ("calibration", "0003_companion_changes")]
ENCRYPTING_MIGRATIONS = [("governance", "0008_encrypt_pii"), ("workflows", "0005_encrypt_pii"),
                         ("calibration", "0004_encrypt_pii")]
MIGRATED = {  # plaintext written before the encrypting migrations
    "summary": f"PII-migrated-summary-{TAG}", "agent": f"PII-migrated-agent-{TAG}",
    "session": f"PII-migrated-session-{TAG}", "meta": f"PII-migrated-meta-{TAG}",
    "actor": f"PII-migrated-actor-{TAG}", "event_data": f"PII-migrated-event-data-{TAG}",
    "baseline_by": f"PII-migrated-baseline-by-{TAG}", "subject": f"PII-migrated-subject-{TAG}",
    "starter": f"PII-migrated-starter-{TAG}", "voter": f"PII-migrated-voter-{TAG}",
    "start_reason": f"PII-migrated-start-reason-{TAG}", "vote_reason": f"PII-migrated-vote-reason-{TAG}",
    "justification": f"PII-migrated-justification-{TAG}", "proposed_by": f"PII-migrated-proposed-by-{TAG}",
    "author": f"PII-migrated-author-{TAG}",
}
ROUND_TRIP = {"summary": f"PII-round-trip-summary-{TAG}", "reason": f"PII-round-trip-reason-{TAG}",
              "submitter": f"pii_roundtrip_{TAG}", "justification": f"PII-round-trip-justification-{TAG}"}


def latest_targets() -> list[tuple[str, str]]:
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def migrate(targets) -> MigrationExecutor:
    MigrationExecutor(connection).migrate(targets)
    return MigrationExecutor(connection)  # a fresh loader: the applied migrations as they are now


def applied(executor: MigrationExecutor) -> set[tuple[str, str]]:
    return set(executor.loader.applied_migrations)


def wipe_all_tables() -> None:
    """Empty every table but django_migrations (the serialized rollback after a transactional
    test re-creates the migrations' rows), whatever schema the tables are at."""
    tables = [t for t in connection.introspection.table_names() if t != "django_migrations"]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("TRUNCATE " + ", ".join(connection.ops.quote_name(t) for t in tables) + " CASCADE")
            return
        for trigger in ("no_update", "no_delete"):
            cursor.execute(f"DROP TRIGGER IF EXISTS {TRANSITIONS}_{trigger}")
        cursor.execute("PRAGMA foreign_keys = OFF")
        for table in tables:
            cursor.execute(f"DELETE FROM {connection.ops.quote_name(table)}")
        cursor.execute("PRAGMA foreign_keys = ON")


def restore_append_only_triggers() -> None:
    """The triggers of the latest migration, if a recovery had to lift them (SQLite)."""
    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = %s", [TRANSITIONS])
        if cursor.fetchone()[0] == 0:
            for statement in APPEND_ONLY.SQLITE_FORWARD:
                cursor.execute(statement)


@pytest.fixture
def back_to_latest_afterwards():
    """Whatever a migration test does or fails at, the database ends at the latest migration
    (the serialized rollback after it, and every later test, need the current schema). If
    going forward fails with the test's rows in place, they are wiped and it is retried: the
    test has failed already, and the rows would be flushed after it anyway."""
    latest = latest_targets()
    yield latest
    if MigrationExecutor(connection).migration_plan(latest):
        try:
            migrate(latest)
        except Exception:
            wipe_all_tables()
            migrate(latest)
            restore_append_only_triggers()
    assert not MigrationExecutor(connection).migration_plan(latest)
    versions._built.clear()


def insert_plaintext_rows(apps) -> dict[str, Any]:
    """Rows written with the models as they were before encryption (plain text and JSON)."""
    from calibration.versions import content_hash
    from governance.engine import AegisConfig

    Tier, Customer = apps.get_model("governance", "Tier"), apps.get_model("governance", "Customer")
    now = timezone.now().replace(microsecond=0)
    tier = Tier.objects.filter(name="team").first() or Tier.objects.create(
        name="team", display_name="Team", monthly_evaluations=100_000, rate_per_minute=600, max_keys=10)
    customer = Customer.objects.create(customer_id=f"cus_migrated{TAG}", name="Migrated Co", tier=tier)
    decision = apps.get_model("governance", "Decision").objects.create(
        decision_id=uuid.uuid4(), customer=customer, status="proceed", config_version=1, created_at=now,
        proposal_summary=MIGRATED["summary"], agent_id=MIGRATED["agent"], session_id=MIGRATED["session"],
        metadata={"owner": MIGRATED["meta"], "list": [1, 2.5, None, True]}, estimated_impact="low",
        risk_baseline=0.02, risk_proposed=0.05, profit_baseline=0.98, profit_proposed=0.98, novelty_score=0.5,
        complexity_score=0.8, quality_score=0.85, replay_vector=b"\x00" * 8, request_data={},
        response={"status": "proceed"})
    empty = apps.get_model("governance", "Decision").objects.create(  # blank PII stays blank, not NULL
        decision_id=uuid.uuid4(), customer=customer, status="proceed", config_version=1, created_at=now,
        proposal_summary="", agent_id="", session_id="", metadata={}, estimated_impact="low",
        risk_baseline=0.02, risk_proposed=0.05, profit_baseline=0.98, profit_proposed=0.98, novelty_score=0.5,
        complexity_score=0.8, quality_score=0.85, replay_vector=b"\x00" * 8, request_data={},
        response={"status": "proceed"})
    event = apps.get_model("governance", "TelemetryEvent").objects.create(
        name="decision.made", actor=MIGRATED["actor"], data={"note": MIGRATED["event_data"], "n": 3})
    baseline = apps.get_model("governance", "DriftBaseline").objects.create(
        customer=customer, values=[0.1, 0.2], source="uploaded b.csv", created_by=MIGRATED["baseline_by"])

    # A consensus workflow with a valid two-transition chain and its checkpoints.
    Instance = apps.get_model("workflows", "WorkflowInstance")
    Transition = apps.get_model("workflows", "WorkflowTransition")
    Checkpoint = apps.get_model("workflows", "WorkflowCheckpoint")
    state = {"subject": MIGRATED["subject"], "reviewers": [MIGRATED["voter"]], "quorum": 1,
             "approval_threshold": 0.5, "deadline": utc_iso(now + timedelta(days=1)), "votes": {}}
    workflow = Instance.objects.create(workflow_type="consensus", current_state="", status="active",
                                       state_data={}, version=0, customer=customer, created_at=now,
                                       updated_at=now)
    prev = GENESIS_HASH
    steps = [("", "voting", "active", MIGRATED["starter"], MIGRATED["start_reason"],
              {"event": "start", "actor_id": None, "request_id": ""}, state),
             ("voting", "approved", "completed", MIGRATED["voter"], MIGRATED["vote_reason"],
              {"event": "vote", "actor_id": None, "request_id": "", "reviewer": MIGRATED["voter"], "vote": "approve"},
              {**state, "votes": {MIGRATED["voter"]: "approve"}})]
    for seq, (from_state, to_state, status, by, reason, payload, data) in enumerate(steps, start=1):
        digest = transition_hash(workflow_id=workflow.workflow_id, seq=seq, from_state=from_state,
                                 to_state=to_state, triggered_by=by, reason=reason, payload=payload,
                                 created_at=now, prev_hash=prev)
        Transition.objects.create(workflow=workflow, seq=seq, from_state=from_state, to_state=to_state,
                                  triggered_by=by, reason=reason, payload=payload, created_at=now, prev_hash=prev,
                                  hash=digest)
        prev = digest
        workflow.current_state, workflow.status, workflow.state_data, workflow.version = to_state, status, data, seq
        workflow.save()
        snapshot = checkpoint_data_of(workflow)
        Checkpoint.objects.create(workflow=workflow, seq=seq, checkpoint_data=snapshot,
                                  hash=checkpoint_hash(snapshot), created_at=now, created_by=by)

    # Configuration v1 (as the data migration writes it, with an author) and a proposal on it.
    parameters = AegisConfig.default().to_dict()
    v1 = apps.get_model("calibration", "ConfigurationVersion").objects.create(
        version=1, parameters=parameters, content_hash=content_hash(parameters), source="schema_default",
        source_ref="interface-contract", author=MIGRATED["author"])
    holder = Instance.objects.create(workflow_type="calibration", current_state="", status="pending",
                                     state_data={}, version=0, created_at=now, updated_at=now)
    proposal = apps.get_model("calibration", "CalibrationProposal").objects.create(
        workflow=holder, parameter="novelty_threshold", current_value=0.8, proposed_value=0.85,
        companion_changes={}, base_version=v1, justification=MIGRATED["justification"],
        proposed_by=MIGRATED["proposed_by"], created_at=now)
    return {"decision": decision.pk, "empty": empty.pk, "event": event.pk, "baseline": baseline.pk,
            "workflow": workflow.workflow_id, "proposal": proposal.pk, "v1": v1.pk,
            "state": {**state, "votes": {MIGRATED["voter"]: "approve"}}}


def database_file_bytes() -> bytes:
    """The bytes on disk of the encrypted tables (PostgreSQL: their heap and TOAST files,
    after a CHECKPOINT) or of the whole database file and its WAL (SQLite)."""
    if connection.vendor == "sqlite":
        path = Path(connection.settings_dict["NAME"])
        return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())
    with connection.cursor() as cursor:
        cursor.execute("CHECKPOINT")
        cursor.execute("SHOW data_directory")
        data_directory = Path(cursor.fetchone()[0])
        files = []
        for label, _ in sorted(ENCRYPTED_COLUMNS):
            table = django_apps.get_model(label)._meta.db_table
            cursor.execute("SELECT pg_relation_filepath(%s::regclass), "
                           "(SELECT pg_relation_filepath(reltoastrelid) FROM pg_class "
                           " WHERE oid = %s::regclass AND reltoastrelid <> 0)", [table, table])
            files += [name for name in cursor.fetchone() if name]
    return b"".join(segment.read_bytes() for name in files
                    for segment in data_directory.glob(name + "*") if segment.is_file())


def assert_only_ciphertext_in_encrypted_columns() -> None:
    for label, field in sorted(ENCRYPTED_COLUMNS):
        model = django_apps.get_model(label)
        assert all(cell.startswith(b"gAAAAA") for cell in raw_column(model, field)), (label, field)


@pytest.mark.django_db(transaction=True)
def test_the_encrypting_migrations_keep_existing_plaintext_and_encrypt_it(back_to_latest_afterwards):
    latest = back_to_latest_afterwards
    # The data migrations' configuration v1 is re-created below, in plain, at the old schema
    # (going back over rows is test_the_encrypting_migrations_reverse_with_rows_present's subject).
    ConfigurationVersion.objects.all().delete()
    executor = migrate(BEFORE_ENCRYPTION)
    assert not executor.migration_plan(BEFORE_ENCRYPTION)
    assert not applied(executor) & set(ENCRYPTING_MIGRATIONS)

    rows = insert_plaintext_rows(executor.loader.project_state(BEFORE_ENCRYPTION).apps)
    cells = raw_cells()
    for name, marker in MIGRATED.items():  # stored in plain before the migration: the search finds it
        assert locations(marker, cells), name

    executor = migrate(latest)
    assert not executor.migration_plan(latest) and set(ENCRYPTING_MIGRATIONS) <= applied(executor)

    # Every value reads back through the current models exactly as it was written ...
    decision = Decision.objects.get(pk=rows["decision"])
    assert (decision.proposal_summary, decision.agent_id, decision.session_id) == (
        MIGRATED["summary"], MIGRATED["agent"], MIGRATED["session"])
    # PostgreSQL's jsonb kept its own key order before the migration; values and types must match.
    assert same(decision.metadata, {"owner": MIGRATED["meta"], "list": [1, 2.5, None, True]},
                key_order=connection.vendor != "postgresql")
    empty = Decision.objects.get(pk=rows["empty"])
    assert (empty.proposal_summary, empty.agent_id, empty.session_id, empty.metadata) == ("", "", "", {})
    event = TelemetryEvent.objects.get(pk=rows["event"])
    assert (event.actor, event.data) == (MIGRATED["actor"], {"note": MIGRATED["event_data"], "n": 3})
    assert DriftBaseline.objects.get(pk=rows["baseline"]).created_by == MIGRATED["baseline_by"]
    workflow = WorkflowInstance.objects.get(workflow_id=rows["workflow"])
    assert workflow.state_data == rows["state"]
    assert list(workflow.transitions.order_by("seq").values_list("triggered_by", "reason")) == [
        (MIGRATED["starter"], MIGRATED["start_reason"]), (MIGRATED["voter"], MIGRATED["vote_reason"])]
    assert workflow.transitions.get(seq=2).payload["reviewer"] == MIGRATED["voter"]
    assert list(workflow.checkpoints.order_by("seq").values_list("created_by", flat=True)) == [
        MIGRATED["starter"], MIGRATED["voter"]]
    assert workflow.checkpoints.get(seq=2).checkpoint_data["state_data"] == rows["state"]
    proposal = CalibrationProposal.objects.get(pk=rows["proposal"])
    assert (proposal.justification, proposal.proposed_by) == (MIGRATED["justification"], MIGRATED["proposed_by"])
    assert ConfigurationVersion.objects.get(pk=rows["v1"]).author == MIGRATED["author"]

    # ... the chain (which covers the plaintext) still verifies ...
    report = DurableWorkflowEngine().report(rows["workflow"])
    assert report.is_valid and report.transitions == 2 and report.checkpoints == 2, report.message

    # ... and no plaintext is left anywhere: the encrypted columns hold Fernet tokens only.
    cells = raw_cells()
    leaks = {name: sorted(found) for name, marker in MIGRATED.items() if (found := locations(marker, cells))}
    assert not leaks, f"plaintext left after the migration: {leaks}"
    assert_only_ciphertext_in_encrypted_columns()
    # ... nor in the database files, where dropped columns and replaced row versions linger
    # until the tables are rewritten (workflows 0006 purges them).
    stored = database_file_bytes()
    assert MIGRATED["summary"].encode() not in stored and MIGRATED["voter"].encode() not in stored


@pytest.mark.django_db(transaction=True)
def test_the_encrypting_migrations_reverse_with_rows_present(back_to_latest_afterwards):
    """encryption_migration says the operations are reversible ("going back decrypts into a
    plaintext column again"): going back to the plaintext schema with rows in the tables (the
    data migrations' configuration v1 always is one) keeps every value, and forward again
    encrypts them once more with the chains still valid."""
    latest = back_to_latest_afterwards
    actor = Actor(ROUND_TRIP["submitter"], roles=frozenset({Role.RISK_LEAD}))
    workflow = governance_services.submit_proposal(
        parse_proposal({"proposal_summary": ROUND_TRIP["summary"], "estimated_impact": "high"}), actor=actor)
    workflow_services.fire_event(workflow.workflow_id, "reject", actor=RISK, comment=ROUND_TRIP["reason"])
    from calibration import services as calibration_services
    proposal = calibration_services.propose("novelty_threshold", 0.85, ROUND_TRIP["justification"], actor=actor)

    executor = migrate(BEFORE_ENCRYPTION)
    assert not applied(executor) & set(ENCRYPTING_MIGRATIONS)
    cells = raw_cells()
    for name in ("summary", "reason", "submitter", "justification"):  # decrypted into plain columns
        assert locations(ROUND_TRIP[name], cells), name

    executor = migrate(latest)
    assert not executor.migration_plan(latest)
    assert WorkflowTransition.objects.get(workflow__workflow_id=workflow.workflow_id, seq=3).reason == \
        ROUND_TRIP["reason"]
    assert CalibrationProposal.objects.get(pk=proposal.pk).justification == ROUND_TRIP["justification"]
    assert ConfigurationVersion.objects.get(version=1).author == "system"
    for report in DurableWorkflowEngine().verify_all():
        assert report.is_valid, report.message
    cells = raw_cells()
    leaks = {name: sorted(found) for name, marker in ROUND_TRIP.items() if (found := locations(marker, cells))}
    assert not leaks, f"plaintext left after migrating back and forth: {leaks}"
    assert_only_ciphertext_in_encrypted_columns()
