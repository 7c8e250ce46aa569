"""Notifications (issue 13, Build 2): who is told what when an item starts waiting or
something goes wrong, with the locmem email backend; idempotency; failures recorded while
the action that caused them succeeds; one email through a real SMTP server and one webhook
to a real HTTP receiver, its signature checked."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
from datetime import date, datetime, time, timedelta, timezone as dt_timezone

import pytest
from django.db import transaction

from calibration import services as calibration_services
from governance import drift
from governance import services as governance_services
from governance.engine.inputs import parse_proposal
from governance.models import Decision, Tier
from governance.services import CallContext
from notifications import events, receivers, services as notification_services
from notifications.channels import utc_text
from notifications.models import NotificationDelivery, NotificationEvent
from notifications.tasks import backoff, deliver_notification
from notify_support import WEBHOOK_SECRET, WebhookReceiver, make_user, smtp_server
from workflows import operations
from workflows import services as workflow_services
from workflows.machines import Actor
from workflows.persistence.durable import ChainReport, DurableWorkflowEngine
from workflows.persistence.models import WorkflowInstance
from workflows.roles import RISK_LEAD_GROUP, SECURITY_LEAD_GROUP

pytestmark = pytest.mark.django_db

PUBLIC_URL = "https://aegis.example.com"
PAUSE = {"proposal_summary": "Bigger change to the pricing table", "estimated_impact": "high"}
HALT = {"proposal_summary": "Novel payments router", "novelty_score": 0.9}  # novelty fails: overridable
SUBMITTER = Actor("integration-bot", roles=frozenset())
Kind = NotificationEvent.Kind
SENT, SKIPPED, FAILED = "sent", "skipped", "failed"


@pytest.fixture(autouse=True)
def public_url(settings):
    settings.AEGIS_PUBLIC_URL = PUBLIC_URL
    settings.AEGIS_WEBHOOK_URL = ""


@pytest.fixture
def people(db):
    """Risk leads rita and rob, security lead sam; nina (staff, no role); risk leads who
    must not get an email: nomail (no address), quiet (opted out), ivan (inactive), norm
    (not staff)."""
    return {
        "rita": make_user("rita", RISK_LEAD_GROUP),
        "rob": make_user("rob", RISK_LEAD_GROUP),
        "sam": make_user("sam", SECURITY_LEAD_GROUP),
        "nina": make_user("nina"),
        "nomail": make_user("nomail", RISK_LEAD_GROUP, email=""),
        "quiet": make_user("quiet", RISK_LEAD_GROUP, email_enabled=False),
        "ivan": make_user("ivan", RISK_LEAD_GROUP, active=False),
        "norm": make_user("norm", RISK_LEAD_GROUP, staff=False),
    }


@pytest.fixture
def tenant(db):
    customer, _key, _plaintext = governance_services.create_customer("Acme", tier=Tier.objects.get(name="team"))
    return customer


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    """`with commit(): ...` runs what the block left for after commit, as a real commit would."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def deliveries(event) -> dict[str, str]:
    """{recipient username (or "webhook"): status} of an event's deliveries."""
    return {(d.user.username if d.user_id else "webhook"): d.status for d in event.deliveries.select_related("user")}


def submit(inputs, *, actor=SUBMITTER, customer=None) -> WorkflowInstance:
    return governance_services.submit_proposal(parse_proposal(inputs), actor=actor, customer=customer)


def halted_with_override(tenant, requester):
    proposal = submit(HALT, customer=tenant)
    return workflow_services.request_override(proposal.workflow_id, actor=workflow_services.actor_for(requester),
                                              justification="Revenue-critical; rollback plan reviewed")


# --- who is told what -----------------------------------------------------------------------

def test_a_decision_in_review_emails_the_risk_leads_who_may_approve_it_not_its_submitter(
        people, tenant, mailoutbox, commit):
    with commit():
        workflow = submit(PAUSE, actor=workflow_services.actor_for(people["rob"]), customer=tenant)
    assert workflow.current_state == "in_review"

    event = NotificationEvent.objects.get()
    assert event.kind == Kind.REVIEW_WAITING
    # rob submitted it (four eyes), sam and nina may not approve, ivan and norm are not active staff.
    assert deliveries(event) == {"rita": SENT, "nomail": SKIPPED, "quiet": SKIPPED}
    assert dict(event.deliveries.filter(status=SKIPPED).values_list("user__username", "last_error")) == {
        "nomail": "the user has no email address", "quiet": "the user turned email notifications off"}
    assert [m.to for m in mailoutbox] == [["rita@example.com"]]
    decision = Decision.objects.get(review_workflow_id=workflow.workflow_id)
    message = mailoutbox[0]
    assert message.subject == (f"[AEGIS] Decision {str(decision.decision_id)[:8]} for Acme waits for review "
                               f"(pause; gates failed: {', '.join(decision.response['failing_gates']) or 'none'})")
    for line in (f"Tenant: Acme ({tenant.customer_id})", "Summary: Bigger change to the pricing table",
                 "Status: pause", f"Risk proposed: {decision.risk_proposed:g}",
                 f"Complexity score: {decision.complexity_score:g}", "Deadline: none",
                 f"Open it here: {PUBLIC_URL}/decisions/{decision.decision_id}/",
                 f"Turn these emails off on your profile page: {PUBLIC_URL}/profile/"):
        assert line in message.body, line


def test_an_override_asks_both_custodian_roles_then_only_the_role_still_missing(people, tenant, mailoutbox, commit):
    with commit():
        proposal = submit(HALT, customer=tenant)
    assert proposal.current_state == "rejected"
    assert not NotificationEvent.objects.exists()  # a halt waits for nobody until an override is requested

    with commit():
        override = workflow_services.request_override(
            proposal.workflow_id, actor=workflow_services.actor_for(people["rita"]),
            justification="Revenue-critical; rollback plan reviewed")
    first = NotificationEvent.objects.get()
    assert first.kind == Kind.OVERRIDE_WAITING
    assert deliveries(first) == {"rita": SENT, "rob": SENT, "sam": SENT, "nomail": SKIPPED, "quiet": SKIPPED}
    decision_id = override.state_data["proposal_id"]
    assert first.subject == f"Override of decision {decision_id[:8]} for Acme needs a risk_lead or security_lead signature"
    expires = utc_text(override.state_data["expires_at"])
    assert {m.to[0] for m in mailoutbox} == {"rita@example.com", "rob@example.com", "sam@example.com"}
    body = mailoutbox[0].body
    for line in (f"Deadline: {expires}", "Signatures: 0 of 2", "Failed gates: novelty",
                 "Summary: Justification: Revenue-critical; rollback plan reviewed",
                 f"Open it here: {PUBLIC_URL}/workflows/{override.workflow_id}/"):
        assert line in body, line

    mailoutbox.clear()
    with commit():
        workflow_services.fire_event(override.workflow_id, "approve", actor=workflow_services.actor_for(people["rita"]),
                                     comment="Risk reviewed")
    second = NotificationEvent.objects.exclude(pk=first.pk).get()
    assert second.subject.endswith("needs a security_lead signature")
    assert deliveries(second) == {"sam": SENT}  # rita signed, the other risk leads hold the role already given
    assert [m.to for m in mailoutbox] == [["sam@example.com"]]
    assert "Signatures: 1 of 2" in mailoutbox[0].body and "Missing roles: security_lead" in mailoutbox[0].body


def test_a_consensus_asks_its_named_reviewers_once(people, tenant, mailoutbox, commit):
    deadline = datetime.now(dt_timezone.utc).replace(microsecond=0) + timedelta(days=2)
    spec = workflow_services.ConsensusSpec(subject="Adopt the new gate thresholds", reviewers=["rob", "nina", "ghost"],
                                           quorum=2, approval_threshold=0.5, deadline=deadline)
    with commit():
        consensus = workflow_services.start_consensus(spec, actor=SUBMITTER, customer=tenant)
    event = NotificationEvent.objects.get()
    assert event.kind == Kind.CONSENSUS_WAITING
    assert deliveries(event) == {"rob": SENT, "nina": SENT}
    body = mailoutbox[0].body
    assert f"Deadline: {deadline:%Y-%m-%d %H:%M} UTC" in body and "Quorum: 2" in body and "Reviewers: 3" in body
    assert f"{PUBLIC_URL}/workflows/{consensus.workflow_id}/" in body

    with commit():  # a vote leaves it voting: nobody is asked again
        workflow_services.fire_event(consensus.workflow_id, "vote", actor=workflow_services.actor_for(people["rob"]),
                                     params={"vote": "approve"})
    assert NotificationEvent.objects.count() == 1 and len(mailoutbox) == 2


def test_a_calibration_proposal_asks_the_other_risk_leads_never_its_proposer(people, mailoutbox, commit):
    with commit():
        proposal = calibration_services.propose("tau_warning", 0.35, "Sustained drift over the last month",
                                                actor=workflow_services.actor_for(people["rita"]))
    event = NotificationEvent.objects.get()
    assert event.kind == Kind.CALIBRATION_WAITING
    assert deliveries(event) == {"rob": SENT, "nomail": SKIPPED, "quiet": SKIPPED}
    assert event.subject == "Calibration proposal waits for approval: tau_warning 0.3 → 0.35"
    assert [m.to for m in mailoutbox] == [["rob@example.com"]]
    assert f"{PUBLIC_URL}/calibration/{proposal.proposal_id}/" in mailoutbox[0].body
    assert "Summary: Sustained drift over the last month" in mailoutbox[0].body


DAY = date(2026, 11, 20)


def _decisions(customer, risk_values):
    ctx = CallContext(customer=customer, api_key=None)
    at = datetime.combine(DAY, time(12), tzinfo=dt_timezone.utc)
    for value in risk_values:
        governance_services.evaluate_proposal(ctx, parse_proposal({"proposal_summary": "Drift sample",
                                                                   "risk_proposed": value}), now=at)


def test_critical_drift_emails_the_risk_leads_and_a_normal_report_nobody(people, tenant, mailoutbox, commit):
    baseline = [0.05 + 0.001 * i for i in range(40)]
    steady, _key, _plaintext = governance_services.create_customer("Steady", tier=Tier.objects.get(name="team"))
    for customer, current in ((tenant, [0.8] * 30), (steady, baseline[:30])):
        drift.set_baseline(customer, baseline, actor=Actor("rita"), source="test baseline")
        _decisions(customer, current)

    with commit():
        critical, _ = drift.run_drift_report(tenant, DAY)
        normal, _ = drift.run_drift_report(steady, DAY)
    assert (critical.status, normal.status) == ("critical", "normal")

    event = NotificationEvent.objects.get()
    assert event.kind == Kind.DRIFT_CRITICAL and event.key == f"drift-report:{critical.pk}"
    assert deliveries(event) == {"rita": SENT, "rob": SENT, "nomail": SKIPPED, "quiet": SKIPPED}  # risk leads only
    assert event.subject == (f"Drift critical for Acme on {DAY}: KL {critical.kl_divergence:.4f} ≥ tau_critical "
                             f"{critical.tau_critical:g}")
    assert f"{PUBLIC_URL}/drift/{tenant.customer_id}/" in mailoutbox[0].body
    assert "N current: 30" in mailoutbox[0].body


def test_a_failed_chain_verification_emails_security_and_risk_leads(people, monkeypatch, mailoutbox, commit):
    with commit():
        assert operations.verify_all_chains().broken == 0
    assert not NotificationEvent.objects.exists()  # a clean run tells nobody

    broken = ChainReport("3f6c1d2e-0000-4000-8000-000000000001", False, "seq 2: broken link", 2, 2, 2)
    monkeypatch.setattr(DurableWorkflowEngine, "verify_all", lambda self: iter([broken]))
    with commit():
        run = operations.verify_all_chains()
    event = NotificationEvent.objects.get()
    assert event.kind == Kind.VERIFICATION_FAILED
    assert deliveries(event) == {"rita": SENT, "rob": SENT, "sam": SENT, "nomail": SKIPPED, "quiet": SKIPPED}
    assert event.subject == f"Audit chain verification failed: 1 of {run.checked} records broken"
    assert f"{PUBLIC_URL}/admin/workflows/chainverificationrun/{run.pk}/change/" in mailoutbox[0].body
    assert "First broken: 3f6c1d2e-0000-4000-8000-000000000001" in mailoutbox[0].body


def test_a_failed_backup_emails_security_and_risk_leads(people, settings, tmp_path, monkeypatch, mailoutbox, commit):
    settings.BACKUP_DIR = tmp_path

    def no_space(path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(operations, "write_backup", no_space)
    with commit(), pytest.raises(OSError):
        operations.run_scheduled_backup(DAY)
    event = NotificationEvent.objects.get()
    assert event.kind == Kind.BACKUP_FAILED and event.subject == f"Scheduled backup of {DAY} failed"
    assert deliveries(event) == {"rita": SENT, "rob": SENT, "sam": SENT, "nomail": SKIPPED, "quiet": SKIPPED}
    assert "Summary: [Errno 28] No space left on device" in mailoutbox[0].body
    assert "/admin/workflows/backuprun/" in mailoutbox[0].body


# --- once, after commit, never failing the action --------------------------------------------

def test_a_rolled_back_action_tells_nobody(people, tenant, mailoutbox, commit):
    with commit(), pytest.raises(RuntimeError), transaction.atomic():
        submit(PAUSE, customer=tenant)
        raise RuntimeError("the caller gave up")
    assert not NotificationEvent.objects.exists() and mailoutbox == []


def test_running_the_task_twice_or_a_duplicate_signal_sends_once(people, tenant, mailoutbox, commit):
    with commit():
        workflow = submit(PAUSE, customer=tenant)
    event = NotificationEvent.objects.get()
    delivery = event.deliveries.get(user=people["rita"])
    assert (delivery.status, delivery.attempts, len(mailoutbox)) == (SENT, 1, 2)  # rita and rob

    assert deliver_notification.delay(delivery.pk).get() == SENT
    assert notification_services.deliver(delivery.pk) == SENT
    transition = workflow.transitions.order_by("-seq").first()
    with commit():
        receivers.on_workflow_transitioned(None, workflow_id=str(workflow.workflow_id), workflow_type="proposal",
                                           from_state=transition.from_state, to_state=transition.to_state,
                                           seq=transition.seq)
    assert NotificationEvent.objects.count() == 1 and event.deliveries.count() == 4
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, len(mailoutbox)) == (SENT, 1, 2)


def test_a_delivery_another_worker_is_sending_is_left_to_it(people, tenant, mailoutbox, commit, settings):
    settings.EMAIL_BACKEND = "notify_support.FailingEmailBackend"
    with commit():
        submit(PAUSE, customer=tenant)
    delivery = NotificationDelivery.objects.get(user=people["rita"])
    assert delivery.status == FAILED
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    NotificationDelivery.objects.filter(pk=delivery.pk).update(claimed_at=datetime.now(dt_timezone.utc))
    assert notification_services.deliver(delivery.pk) == "claimed" and mailoutbox == []
    abandoned = datetime.now(dt_timezone.utc) - notification_services.CLAIM_TIMEOUT - timedelta(seconds=1)
    NotificationDelivery.objects.filter(pk=delivery.pk).update(claimed_at=abandoned)
    assert notification_services.deliver(delivery.pk) == SENT and [m.to for m in mailoutbox] == [["rita@example.com"]]
    delivery.refresh_from_db()
    assert (delivery.attempts, delivery.last_error, delivery.claimed_at) == (2, "", None)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_failing_smtp_server_and_webhook_are_recorded_and_the_action_still_succeeds(
        people, tenant, settings, mailoutbox, commit):
    settings.EMAIL_BACKEND = "notify_support.FailingEmailBackend"
    settings.AEGIS_WEBHOOK_URL = f"http://127.0.0.1:{_closed_port()}/hooks/aegis?token=do-not-log"
    settings.AEGIS_WEBHOOK_SECRET = WEBHOOK_SECRET
    with commit():
        override = halted_with_override(tenant, people["sam"])
    assert WorkflowInstance.objects.get(pk=override.pk).current_state == "pending"  # the action happened

    event = NotificationEvent.objects.get()
    assert deliveries(event) == {"rita": FAILED, "rob": FAILED, "sam": FAILED, "nomail": SKIPPED, "quiet": SKIPPED,
                                 "webhook": FAILED}
    email = event.deliveries.get(user=people["rita"])
    assert (email.attempts, email.last_error, email.sent_at) == (
        1, "SMTPServerDisconnected: Connection unexpectedly closed", None)
    webhook = event.deliveries.get(channel="webhook")
    assert webhook.attempts == 1 and "Connection refused" in webhook.last_error
    assert "do-not-log" not in webhook.last_error and mailoutbox == []


def test_a_webhook_answering_an_error_is_failed_with_its_status(people, tenant, settings, commit):
    settings.AEGIS_WEBHOOK_SECRET = WEBHOOK_SECRET
    with WebhookReceiver(status=500) as hook:
        settings.AEGIS_WEBHOOK_URL = hook.url
        with commit():
            halted_with_override(tenant, people["sam"])
    webhook = NotificationDelivery.objects.get(channel="webhook")
    assert (webhook.status, webhook.last_error) == (FAILED, "HTTPError: HTTP Error 500: Internal Server Error")


def test_a_failing_notification_step_never_fails_the_action(people, tenant, monkeypatch, commit):
    def broken(*args, **kwargs):
        raise RuntimeError("bug in a notification")

    monkeypatch.setattr(events, "waiting_announcement", broken)
    with commit():
        workflow = submit(PAUSE, customer=tenant)
    assert WorkflowInstance.objects.get(pk=workflow.pk).current_state == "in_review"
    assert not NotificationEvent.objects.exists()


def test_retries_back_off_exponentially_up_to_half_an_hour():
    assert [backoff(n) for n in range(8)] == [30, 60, 120, 240, 480, 960, 1800, 1800]
    assert deliver_notification.max_retries == 5 and deliver_notification.acks_late


# --- real servers -------------------------------------------------------------------------

def test_an_email_arrives_at_a_real_smtp_server(people, tenant, settings, commit):
    with smtp_server() as (port, inbox):
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
        settings.DEFAULT_FROM_EMAIL = "AEGIS <aegis@example.com>"
        with commit():
            workflow = submit(PAUSE, customer=tenant)
        assert sorted(to for recipients, _ in inbox.messages for to in recipients) == [
            "rita@example.com", "rob@example.com"]
    decision = Decision.objects.get(review_workflow_id=workflow.workflow_id)
    _, message = inbox.messages[0]
    assert message["From"] == "AEGIS <aegis@example.com>"
    assert message["Subject"].startswith(f"[AEGIS] Decision {str(decision.decision_id)[:8]} for Acme waits for review")
    assert f"Open it here: {PUBLIC_URL}/decisions/{decision.decision_id}/" in message.get_content()
    assert set(NotificationDelivery.objects.filter(user__username__in=["rita", "rob"])
               .values_list("status", flat=True)) == {SENT}


def test_a_signed_webhook_arrives_at_a_real_http_receiver(people, tenant, settings, commit):
    settings.AEGIS_WEBHOOK_SECRET = WEBHOOK_SECRET
    with WebhookReceiver() as hook:
        settings.AEGIS_WEBHOOK_URL = hook.url
        with commit():
            override = halted_with_override(tenant, people["sam"])
    assert len(hook.requests) == 1
    headers, body = hook.requests[0]
    expected = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-aegis-signature"], expected)
    assert headers["content-type"] == "application/json; charset=utf-8"
    payload = json.loads(body)
    url = f"{PUBLIC_URL}/workflows/{override.workflow_id}/"
    assert set(payload) == {"event", "occurred_at", "subject", "url", "summary", "tenant", "numbers", "deadline",
                            "text"}
    assert (payload["event"], payload["url"], payload["tenant"]) == (
        "override.waiting", url, f"Acme ({tenant.customer_id})")
    assert payload["deadline"] == override.state_data["expires_at"]
    assert payload["numbers"]["missing_roles"] == ["risk_lead", "security_lead"]
    assert payload["text"] == f"AEGIS: {payload['subject']} {url}"
    assert "@example.com" not in body.decode() and "sam" not in body.decode()  # nobody's address or name
    assert NotificationDelivery.objects.get(channel="webhook").status == SENT


def test_the_lower_layers_never_import_notifications():
    """workflows, governance and calibration send signals; only notifications listens."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    offenders = []
    for app in ("workflows", "governance", "calibration"):
        for path in (root / app).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                offenders += [f"{path.relative_to(root)}: {name}" for name in names
                              if name.split(".")[0] == "notifications"]
    assert offenders == []
