"""Telemetry events are emitted by the services, append-only, and drive /metrics."""

import pytest
from django.test import Client, override_settings

from governance import services
from governance.engine.inputs import parse_proposal
from governance.models import Tier, TelemetryEvent
from governance.telemetry import REGISTRY, Event
from workflows import services as workflow_services
from workflows.machines import Actor
from governance import services as governance_services


@pytest.fixture
def tenant(db):
    customer, key, _ = services.create_customer("Acme", tier=Tier.objects.get(name="team"))
    return services.CallContext(customer=customer, api_key=key, request_id="req_test")


def test_every_registered_event_name_is_an_event():
    assert set(REGISTRY) == set(Event)
    assert all(name.value.count(".") == 1 for name in Event)


def test_a_decision_emits_one_decision_made_event(tenant):
    body = services.evaluate_proposal(tenant, parse_proposal({"proposal_summary": "x", "agent_id": "bot-7"}))
    [event] = TelemetryEvent.objects.filter(name=Event.DECISION_MADE)
    assert event.subject == body["decision_id"] and event.actor == "bot-7" and event.request_id == "req_test"
    assert event.data["status"] == "proceed" and set(event.data["gates"]) == set(body["gates"])


def test_a_refused_evaluation_emits_nothing(tenant):
    tenant.customer.tier.monthly_evaluations = 0
    tenant.customer.tier.save()
    with pytest.raises(Exception):
        services.evaluate_proposal(tenant, parse_proposal({"proposal_summary": "x"}))
    assert not TelemetryEvent.objects.exists()


def test_workflow_transitions_and_override_requests_are_events(db):
    actor = Actor("alice", roles=frozenset({"risk_lead"}))
    proposal = governance_services.submit_proposal(parse_proposal({"proposal_summary": "x", "novelty_score": 0.9}),
                                                 actor=actor)
    workflow_services.request_override(proposal.workflow_id, actor=actor, justification="needed")
    names = list(TelemetryEvent.objects.order_by("id").values_list("name", flat=True))
    assert names.count(Event.WORKFLOW_TRANSITION) == 4  # start, evaluate, override start, request_override
    assert names.count(Event.OVERRIDE_REQUESTED) == 1


def test_events_are_append_only(tenant):
    services.evaluate_proposal(tenant, parse_proposal({"proposal_summary": "x"}))
    event = TelemetryEvent.objects.get()
    event.subject = "changed"
    with pytest.raises(ValueError, match="append-only"):
        event.save()
    with pytest.raises(ValueError, match="append-only"):
        event.delete()


def metrics_text(client: Client, **extra) -> tuple[int, str]:
    response = client.get("/metrics", secure=True, **extra)
    return response.status_code, response.content.decode()


def sample(text: str, prefix: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


@pytest.mark.django_db(transaction=True)
def test_metrics_count_decisions_and_gate_results_after_commit(tenant):
    client = Client()
    _, before = metrics_text(client)
    for novelty in (0.5, 0.9, 0.95):
        services.evaluate_proposal(tenant, parse_proposal({"proposal_summary": "x", "novelty_score": novelty}))
    status, after = metrics_text(client)
    assert status == 200
    halted = 'aegis_decisions_total{shadow="false",status="halt"}'
    assert sample(after, halted) - sample(before, halted) == 2
    failed = 'aegis_gate_results_total{gate="novelty",result="fail"}'
    assert sample(after, failed) - sample(before, failed) == 2
    assert sample(after, "aegis_gate_results_total{") - sample(before, "aegis_gate_results_total{") == 15
    assert "aegis_http_requests_total" in after


@pytest.mark.django_db
@pytest.mark.parametrize("remote, token, header, forwarded, status", [
    ("127.0.0.1", "", None, None, 200),
    ("::1", "", None, None, 200),
    ("10.1.2.3", "", None, None, 403),
    ("10.1.2.3", "s3cret-token", "Bearer s3cret-token", None, 200),
    ("10.1.2.3", "s3cret-token", "Bearer wrong", None, 403),
    ("127.0.0.1", "s3cret-token", None, None, 403),
    # A reverse proxy on the same host: the request comes from loopback but was forwarded.
    ("127.0.0.1", "", None, ("HTTP_X_FORWARDED_FOR", "203.0.113.9"), 403),
    ("127.0.0.1", "", None, ("HTTP_FORWARDED", "for=203.0.113.9"), 403),
    ("127.0.0.1", "s3cret-token", "Bearer s3cret-token", ("HTTP_X_FORWARDED_FOR", "203.0.113.9"), 200),
])
def test_metrics_access_is_loopback_or_token(remote, token, header, forwarded, status):
    extra = {"REMOTE_ADDR": remote}
    if header:
        extra["HTTP_AUTHORIZATION"] = header
    if forwarded:
        extra[forwarded[0]] = forwarded[1]
    with override_settings(AEGIS_METRICS_TOKEN=token):
        code, body = metrics_text(Client(), **extra)
    assert code == status
    if status == 403:
        assert "AEGIS_METRICS_TOKEN" in body


def test_a_long_subject_is_shortened_not_an_error(db):
    from governance.telemetry import emit

    emit(Event.BACKUP_SUCCEEDED, subject="/very/long/path/" * 30, data={"sha256": "x", "counts": {}})
    event = TelemetryEvent.objects.get()
    assert len(event.subject) == TelemetryEvent._meta.get_field("subject").max_length


@pytest.mark.django_db
def test_a_scheduled_backup_in_a_deep_directory_records_its_file_name(tmp_path, settings):
    from workflows.operations import run_scheduled_backup

    settings.BACKUP_DIR = tmp_path / ("deep-" * 30)
    run = run_scheduled_backup(__import__("datetime").date(2026, 11, 1))
    assert run.outcome == "succeeded"
    assert TelemetryEvent.objects.get(name=Event.BACKUP_SUCCEEDED).subject == "aegis-backup-2026-11-01.json.gz"
