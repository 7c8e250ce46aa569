"""Configuration versions are verified before they are served (calibration/integrity.py):
a version written into the database directly (raw SQL, the ORM with the triggers dropped)
is never served; the version before it stays active, /health turns degraded, preflight and
the verification run name it, the failed-verification notification goes out."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from cal_support import Browser, approved, make_user
from django.core.management import CommandError, call_command
from django.db import connection
from prometheus_client import generate_latest

from calibration import services, versions
from calibration.integrity import verify_all_versions
from calibration.models import CalibrationProposal, ConfigurationVersion
from governance.metrics import _STORED_WORK
from notifications.models import NotificationEvent
from workflows import operations
from workflows.chain import transition_hash
from workflows.models import WorkflowTransition
from workflows.persistence.durable import DurableWorkflowEngine
from workflows.services import actor_for

pytestmark = pytest.mark.django_db

TRANSITIONS = WorkflowTransition._meta.db_table
FORGED_TAU_WARNING = 0.9


@pytest.fixture
def five_versions(alice, bob):
    """v2 … v5, each proposed by alice, approved by bob and applied by alice, as normal."""
    for value in (0.81, 0.82, 0.83, 0.84):
        proposal = approved(alice, bob, "novelty_threshold", value)
        services.apply(proposal.proposal_id, actor=actor_for(alice))
    assert versions.active_version_number() == 5
    return ConfigurationVersion.objects.get(version=5)


def as_new_process() -> None:
    """What a process that starts now sees: no remembered verdict, built config or status."""
    versions._verdicts.clear()
    versions._built.clear()
    versions.forget_newest()


def sql(statement: str, params: list) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def insert_forged_v6(v5: ConfigurationVersion) -> None:
    """The attack of issue 16: INSERT v6 with tau_warning 0.9, content_hash 'forged', no proposal."""
    parameters = json.dumps({**v5.parameters, "tau_warning": FORGED_TAU_WARNING})
    as_json = "CAST(%s AS jsonb)" if connection.vendor == "postgresql" else "%s"
    sql(f"INSERT INTO {ConfigurationVersion._meta.db_table} (version, parameters, content_hash, source, source_ref, "
        f"author, parent_id, created_at, chain_hash) SELECT 6, {as_json}, 'forged', 'calibration', '', author, id, "
        f"created_at, '' FROM {ConfigurationVersion._meta.db_table} WHERE version = 5", [parameters])


def drop_transition_triggers() -> None:
    """What an attacker with DBA rights does first (rolled back with the test's transaction)."""
    if connection.vendor == "sqlite":
        sql(f"DROP TRIGGER {TRANSITIONS}_no_update", [])
        sql(f"DROP TRIGGER {TRANSITIONS}_no_delete", [])
    else:
        sql(f"DROP TRIGGER {TRANSITIONS}_append_only ON {TRANSITIONS}", [])


def rejected() -> list[tuple[int, str]]:
    return [(r.version, r.reason) for r in verify_all_versions().rejected]


# --- the forged INSERT ---------------------------------------------------------------------

def test_a_forged_version_is_not_served_and_everyone_is_told(five_versions, tmp_path,
                                                             django_capture_on_commit_callbacks):
    make_user("sam", risk_lead=True, email="sam@example.org", is_staff=True)
    insert_forged_v6(five_versions)
    as_new_process()

    version, config = versions.active_config()
    assert version == 5 and config.tau_warning != FORGED_TAU_WARNING
    assert versions.active_version_number() == 5 and versions.active_version().version == 5
    assert rejected() == [(6, "content_hash does not match its parameters")]

    response = Browser().get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["config"] == {"ok": False, "version": 5, "rejected": [6],
                                        "error": "configuration v6 does not verify and is not served"}

    page = Browser(make_user("ria", risk_lead=True)).get("/calibration/").content.decode()
    assert 'id="rejected-versions"' in page and "configuration v6 (content_hash does not match its parameters)" in page
    assert 'href="/calibration/versions/">v5</a>' in page

    out = StringIO()
    with pytest.raises(CommandError):
        call_command("aegis_preflight", "--backup", str(tmp_path / "pre.json.gz"), stdout=out)
    report = out.getvalue()
    assert "[FAIL] configuration v6 is stored but not served: content_hash does not match its parameters" in report
    assert "active configuration v5 is valid" in report and "Preflight passed" not in report

    with django_capture_on_commit_callbacks(execute=True):
        run = operations.verify_all_chains()
    assert {"configuration_version": 6, "message": "content_hash does not match its parameters"} in run.failures
    # Nothing applied v6, so the ledger has no entry for it: it finds the insert too.
    assert run.broken == 2 and [f["message"] for f in run.failures if "ledger" in f] == [
        "configuration version v6: inserted: it is stored but has no ledger entry"]
    event = NotificationEvent.objects.get()
    assert event.subject == f"Audit chain verification failed: 2 of {run.checked} records broken"
    assert "sam" in {delivery.user.username for delivery in event.deliveries.select_related("user") if delivery.user}

    assert "aegis_configuration_rejected_versions 1.0" in generate_latest(_STORED_WORK).decode()

    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match="1 rejected configuration version"):
        call_command("aegis_verify_chain", "--all", "--processes", "1", stdout=out, stderr=err)
    assert "6 configuration version(s) checked, v5 served, 1 rejected." in out.getvalue()
    assert "BROKEN configuration v6: content_hash does not match its parameters" in err.getvalue()


def test_a_forged_version_with_recomputed_hashes_still_has_no_provenance(five_versions):
    """The forger recomputes content_hash and chain_hash (they are plain SHA-256): no
    applied, approved calibration produced it, so it is still not served."""
    insert_forged_v6(five_versions)
    forged = ConfigurationVersion.objects.get(version=6)
    forged.content_hash = versions.content_hash(forged.parameters)
    forged.chain_hash = forged.linked_chain_hash(five_versions.chain_hash)
    forged.save(update_fields=["content_hash", "chain_hash"])
    as_new_process()
    assert versions.active_version_number() == 5
    assert rejected() == [(6, "no calibration proposal '' (its source_ref) exists")]


def test_apply_is_refused_on_top_of_a_rejected_version(five_versions, alice, bob):
    proposal = approved(alice, bob, "tau_critical", 0.6)
    insert_forged_v6(five_versions)
    with pytest.raises(services.CalibrationError, match=r"rejected configuration version \(v6: content_hash"):
        services.apply(proposal.proposal_id, actor=actor_for(alice))
    assert not ConfigurationVersion.objects.filter(version=7).exists()


# --- stored versions edited ----------------------------------------------------------------

def test_v5_parameters_edited_in_place_is_not_served(five_versions):
    ConfigurationVersion.objects.filter(version=5).update(
        parameters={**five_versions.parameters, "tau_warning": FORGED_TAU_WARNING})
    as_new_process()
    assert versions.active_version_number() == 4
    assert versions.active_config()[1].tau_warning == ConfigurationVersion.objects.get(version=4).parameters[
        "tau_warning"]
    assert rejected() == [(5, "content_hash does not match its parameters")]


def test_an_older_version_edited_rejects_every_version_after_it(five_versions):
    v3 = ConfigurationVersion.objects.get(version=3)
    edited = {**v3.parameters, "tau_warning": FORGED_TAU_WARNING}
    ConfigurationVersion.objects.filter(version=3).update(parameters=edited, content_hash=versions.content_hash(edited))
    as_new_process()
    assert versions.active_version_number() == 2
    assert rejected() == [
        (3, "chain_hash does not link it to the version before it (inserted, edited or a version deleted)"),
        (4, "follows rejected v3"), (5, "follows rejected v3")]


def test_content_hash_edited_is_not_served(five_versions):
    ConfigurationVersion.objects.filter(version=5).update(content_hash="0" * 64)
    as_new_process()
    assert versions.active_version_number() == 4
    assert rejected() == [(5, "content_hash does not match its parameters")]


def test_parameters_and_hashes_edited_together_are_not_the_approved_change(five_versions):
    edited = {**five_versions.parameters, "tau_warning": FORGED_TAU_WARNING}
    ConfigurationVersion.objects.filter(version=5).update(parameters=edited, content_hash=versions.content_hash(edited))
    v5 = ConfigurationVersion.objects.get(version=5)
    ConfigurationVersion.objects.filter(version=5).update(
        chain_hash=v5.linked_chain_hash(ConfigurationVersion.objects.get(version=4).chain_hash))
    as_new_process()
    assert versions.active_version_number() == 4
    assert rejected() == [(5, "its parameters are not v4's with the approved changes")]


def test_version_one_edited_stops_serving(seeded):
    v1 = ConfigurationVersion.objects.get(version=1)
    edited = {**v1.parameters, "tau_warning": FORGED_TAU_WARNING}
    ConfigurationVersion.objects.filter(version=1).update(parameters=edited, content_hash=versions.content_hash(edited))
    v1.refresh_from_db()
    ConfigurationVersion.objects.filter(version=1).update(chain_hash=v1.linked_chain_hash("0" * 64))
    as_new_process()
    assert rejected() == [(1, "version 1's parameters are not the interface contract's defaults")]
    with pytest.raises(LookupError, match="no stored configuration version verifies"):
        versions.active_config()


# --- four eyes -------------------------------------------------------------------------------

def approval_of(version: ConfigurationVersion) -> WorkflowTransition:
    workflow = CalibrationProposal.objects.get(applied_version=version).workflow
    return WorkflowTransition.objects.get(workflow=workflow, to_state="approved")


def make_the_proposer_the_approver(transition: WorkflowTransition, proposer) -> None:
    drop_transition_triggers()
    payload = {**transition.payload, "actor_id": proposer.pk, "approver_id": proposer.username}
    WorkflowTransition.objects.filter(pk=transition.pk).update(triggered_by=proposer.username, payload=payload)


def rechain(workflow) -> None:
    """Recompute every transition hash of `workflow`, as a forger who knows the scheme does."""
    previous = None
    for row in WorkflowTransition.objects.filter(workflow=workflow).order_by("seq"):
        prev_hash = row.prev_hash if previous is None else previous
        digest = transition_hash(workflow_id=workflow.workflow_id, seq=row.seq, from_state=row.from_state,
                                 to_state=row.to_state, triggered_by=row.triggered_by, reason=row.reason,
                                 payload=row.payload, created_at=row.created_at, prev_hash=prev_hash)
        WorkflowTransition.objects.filter(pk=row.pk).update(prev_hash=prev_hash, hash=digest)
        previous = digest


def test_an_approval_rewritten_to_the_proposer_breaks_the_workflow_chain(five_versions, alice):
    approval = approval_of(five_versions)
    make_the_proposer_the_approver(approval, alice)
    as_new_process()
    assert versions.active_version_number() == 4
    [(version, reason)] = rejected()
    assert version == 5
    assert reason.startswith(f"its calibration workflow {approval.workflow.workflow_id} does not verify: seq 2: "
                             f"hash mismatch")


def test_a_chain_consistent_self_approval_is_not_served(five_versions, alice):
    approval = approval_of(five_versions)
    make_the_proposer_the_approver(approval, alice)
    rechain(approval.workflow)
    assert DurableWorkflowEngine().report(approval.workflow.workflow_id).is_valid  # the forgery holds up there
    as_new_process()
    assert versions.active_version_number() == 4
    assert rejected() == [
        (5, f"four eyes: its calibration workflow {approval.workflow.workflow_id} was approved by its proposer")]


def test_a_version_whose_proposal_was_deleted_is_not_served(five_versions):
    proposal = CalibrationProposal.objects.get(applied_version=five_versions)
    CalibrationProposal.objects.filter(pk=proposal.pk).delete()
    as_new_process()
    assert versions.active_version_number() == 4
    assert rejected() == [(5, f"no calibration proposal '{proposal.proposal_id}' (its source_ref) exists")]


# --- the normal way ----------------------------------------------------------------------------

def test_a_normal_propose_approve_apply_is_served_at_once_and_verifies(five_versions, alice, bob):
    proposal = approved(alice, bob, "tau_critical", 0.6)
    created = services.apply(proposal.proposal_id, actor=actor_for(alice))
    assert versions.active_config() == (6, versions.config_of(6, created.content_hash))
    assert versions.active_config()[1].tau_critical == 0.6
    assert rejected() == []
    assert Browser().get("/health").json()["checks"]["config"] == {"ok": True, "version": 6}
    as_new_process()
    assert versions.active_version_number() == 6
