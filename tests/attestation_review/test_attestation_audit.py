"""Stored attestations in the audit verification (workflows.operations.verify_all_chains, the
scheduled run, and `manage.py aegis_verify_chain --all`): an untouched attestation counts as
checked and clean; one changed behind the append-only triggers (as someone with database
rights could) is a finding naming its decision_id and what is wrong, the run is failed, and
the operations roles are notified as for any broken record."""

from __future__ import annotations

import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from append_only_support import attestations_writable
from attestation_review_support import attest
from attestations import audit
from attestations.models import Attestation
from governance.models import TelemetryEvent
from notifications.events import verification_announcement
from workflows import operations

pytestmark = pytest.mark.django_db


def tampered(attestation, **columns) -> None:
    with attestations_writable():
        assert Attestation.objects.filter(pk=attestation.pk).update(**columns) == 1


def attestation_failures(run) -> list[dict]:
    return [failure for failure in run.failures if "attestation_id" in failure]


def test_untouched_attestations_are_counted_and_clean(signing_pair, tenant, decision):
    baseline = operations.verify_all_chains()
    attest(tenant, decision=decision)
    attest(tenant, risk_class="critical", hours=1)
    run = operations.verify_all_chains()
    assert run.broken == 0 and run.ok
    assert run.checked == baseline.checked + 2
    event = TelemetryEvent.objects.filter(name="audit.verified", subject=str(run.pk)).get()
    assert event.data["attestations"] == 2 and event.data["attestations_broken"] == 0


def test_an_expired_attestation_is_not_a_fault_of_the_record(signing_pair, tenant):
    attest(tenant, now=timezone.now() - timedelta(hours=5), hours=1)
    assert list(audit.verify_attestations()) == []


# Each stored column that repeats the signed payload, changed to a value that is well formed.
COLUMN_CHANGES = {
    "artifact_digest": "0" * 64, "environment": "preview", "risk_class": "low", "policy_version": "aegis-policy-v2",
    "repository": "acme/other", "workflow_ref": "acme/other/.github/workflows/x.yml@refs/heads/main",
    "run_id": "1", "run_attempt": 7, "expires_at": "2099-01-01T00:00:00+00:00", "decision_id": uuid.uuid4(),
}


@pytest.mark.parametrize("column", sorted(COLUMN_CHANGES))
def test_a_changed_column_is_a_finding_naming_it(signing_pair, tenant, column):
    attestation = attest(tenant)
    tampered(attestation, **{column: COLUMN_CHANGES[column]})
    named = str(COLUMN_CHANGES[column]) if column == "decision_id" else str(attestation.decision_id)
    run = operations.verify_all_chains()
    assert run.broken == 1 and not run.ok
    failures = attestation_failures(run)
    assert failures and all(f["attestation_id"] == named for f in failures)
    assert any(f["reason"].startswith(f"{column} is ") and "signed payload says" in f["reason"] for f in failures)
    if column in ("artifact_digest", "environment"):  # what the envelope is verified against
        assert any("does not verify for its recorded digest and environment" in f["reason"] for f in failures)


def test_a_changed_expiry_moment_is_a_finding(signing_pair, tenant):
    attestation = attest(tenant)
    tampered(attestation, expires=attestation.expires + timedelta(days=30))
    [finding] = audit.verify_attestations()
    assert finding.decision_id == str(attestation.decision_id)
    assert finding.reason.startswith("expires is ") and "signed expires_at" in finding.reason


def test_a_swapped_payload_does_not_verify(signing_pair, tenant):
    attestation = attest(tenant)
    other = attest(tenant, artifact="another-build.tar.gz")
    tampered(attestation, envelope={**attestation.envelope, "payload": other.envelope["payload"]})
    reasons = [f.reason for f in audit.verify_attestations()]
    assert "its envelope does not verify for its recorded digest and environment at its issue time " \
           "(AttestationEd25519VerifyFailed)" in reasons
    assert "statement_sha256 is not the SHA-256 of the signed payload" in reasons


def test_a_dropped_signature_does_not_verify(signing_pair, tenant):
    attestation = attest(tenant)
    tampered(attestation, envelope={**attestation.envelope, "signatures": attestation.envelope["signatures"][:1]})
    [finding] = audit.verify_attestations()
    assert "(AttestationSignatureSetIncomplete)" in finding.reason


def test_an_unreadable_payload_is_a_finding(signing_pair, tenant):
    attestation = attest(tenant)
    tampered(attestation, envelope={**attestation.envelope, "payload": "not base64!"})
    reasons = [f.reason for f in audit.verify_attestations()]
    assert "its envelope's payload is not a base64-encoded JSON statement" in reasons
    assert any("(AttestationPayloadDecodeFailed)" in reason for reason in reasons)


def test_a_changed_digest_column_is_a_finding(signing_pair, tenant):
    attestation = attest(tenant)
    tampered(attestation, statement_sha256="f" * 64)
    [finding] = audit.verify_attestations()
    assert finding.reason == "statement_sha256 is not the SHA-256 of the signed payload"


def test_a_changed_predicate_is_a_finding(signing_pair, tenant):
    attestation = attest(tenant)
    predicate = attestation.predicate
    predicate["governance"]["gate_pass_states"] = {"risk": "fail"}
    tampered(attestation, predicate=predicate)
    [finding] = audit.verify_attestations()
    assert finding.reason == "the stored predicate differs from the signed one"


def test_counts_are_per_attestation_and_findings_per_problem(signing_pair, tenant):
    clean, broken = attest(tenant), attest(tenant)
    tampered(broken, repository="acme/other", run_id="1")
    tally = audit.Tally()
    findings = list(audit.verify_attestations(tally))
    assert (tally.checked, tally.broken) == (2, 1)
    assert {f.decision_id for f in findings} == {str(broken.decision_id)} and len(findings) == 2
    assert str(clean.decision_id) not in {f.decision_id for f in findings}


def test_a_failed_verification_notifies_naming_the_attestation(signing_pair, tenant):
    attestation = attest(tenant)
    tampered(attestation, environment="staging")
    run = operations.verify_all_chains()
    announcement = verification_announcement(run.pk)
    assert announcement is not None
    assert announcement.subject == f"Audit chain verification failed: 1 of {run.checked} records broken"
    assert f"attestation {attestation.decision_id}" in announcement.summary


def test_the_command_reports_broken_attestations(signing_pair, tenant):
    clean = attest(tenant)
    out, err = StringIO(), StringIO()
    call_command("aegis_verify_chain", "--all", stdout=out, stderr=err)
    assert "1 attestation(s) checked, 0 broken." in out.getvalue()
    tampered(clean, risk_class="critical")
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match="1 broken attestation") as refused:
        call_command("aegis_verify_chain", "--all", stdout=out, stderr=err)
    assert refused.value.returncode == 1
    assert f"BROKEN attestation {clean.decision_id}: risk_class is 'critical'" in err.getvalue()
