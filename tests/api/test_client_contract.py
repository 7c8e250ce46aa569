"""Contract test: the unmodified official client (`aegis-governance` 1.4.2, import name
`aegis`) against a live server over plain http on localhost, as a self-hosted user runs it.
Every call goes through the client's own parsing and error mapping (see the client report)."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest
from aegis import (Aegis, AegisError, AuthenticationError, ConflictError, IdempotencyBodyMismatchError,
                   RateLimitError, SandboxLimitError, ValidationError)
from django.utils import timezone

from governance import services
from governance.idempotency import body_fingerprint
from governance.engine.decide import SHADOW_STEP
from governance.models import Decision, IdempotencyRecord

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

SUMMARY = "Add Redis caching layer to reduce API latency"


@pytest.fixture
def server(plain_http_live_server, monkeypatch):
    monkeypatch.delenv("AEGIS_API_KEY", raising=False)
    monkeypatch.delenv("AEGIS_BASE_URL", raising=False)
    return plain_http_live_server


@pytest.fixture
def connect(server):
    """connect(key) -> an official client on the live server; closed after the test."""
    clients = []

    def make(key: str | None) -> Aegis:
        client = Aegis(api_key=key, base_url=server.url, max_retries=0, timeout=10.0)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def pinned_clock(monkeypatch):
    """The per-minute window must not roll over between the calls of a throttle test."""
    fixed = timezone.now().replace(second=30, microsecond=0)
    monkeypatch.setattr(services, "timezone", SimpleNamespace(now=lambda: fixed))


def test_evaluate_returns_a_typed_decision_recorded_as_sdk(make_tenant, connect):
    tenant = make_tenant("Acme")
    client = connect(tenant.plaintext)

    decision = client.evaluate(proposal_summary=SUMMARY)

    assert decision.status == "proceed"
    assert decision.gates_passed == 5 and decision.gates_failed == 0
    assert decision.failing_gates == []
    assert decision.gates.risk.value == 0.5
    assert decision.gates.risk.passed is True
    assert decision.confidence == 0.5
    # The client has no gates_skipped: a skipped gate is simply absent from `gates`.
    assert decision.gates.utility is None
    assert decision.drift is None
    assert decision.sandbox is False and decision.remaining is None
    assert uuid.UUID(decision.decision_id).version == 4
    assert decision.timestamp and decision.rationale and decision.next_steps
    assert decision.request_id and decision.request_id.startswith("req_")
    stored = Decision.objects.get(decision_id=decision.decision_id)
    assert stored.channel == "sdk"
    assert stored.customer == tenant.customer


def test_evaluate_passes_optional_fields_and_reports_a_halt(make_tenant, connect):
    client = connect(make_tenant("Acme").plaintext)

    decision = client.evaluate(proposal_summary="Novel router", novelty_score=0.9, quality_subscores=[0.9, 0.8],
                               agent_id="agent-7", phase="commit", change_type="feature", shadow_mode=True)

    assert decision.status == "halt"
    assert decision.failing_gates == ["novelty"]
    # Shadow: recorded only (ENGINE.md §5), so no override and no review.
    assert decision.override_eligible is False and decision.override_requires == []
    assert decision.next_steps == [SHADOW_STEP]
    stored = Decision.objects.get(decision_id=decision.decision_id)
    assert stored.shadow is True and stored.agent_id == "agent-7" and stored.workflow is None


def test_an_idempotency_key_replays_and_a_different_body_raises(make_tenant, connect):
    client = connect(make_tenant("Acme").plaintext)

    first = client.evaluate(proposal_summary=SUMMARY, idempotency_key="deploy-42")
    again = client.evaluate(proposal_summary=SUMMARY, idempotency_key="deploy-42")
    with pytest.raises(IdempotencyBodyMismatchError) as mismatch:
        client.evaluate(proposal_summary="another change", idempotency_key="deploy-42")

    assert again.decision_id == first.decision_id
    assert Decision.objects.count() == 1
    assert mismatch.value.status_code == 422
    assert "Idempotency-Key reused with a different request body" in mismatch.value.message


def test_a_key_in_flight_raises_conflict(make_tenant, connect):
    tenant = make_tenant("Acme")
    client = connect(tenant.plaintext)
    body = {"proposal_summary": SUMMARY, "estimated_impact": "medium", "risk_baseline": 0.02,
            "risk_proposed": 0.05, "profit_baseline": 0.98, "profit_proposed": 0.98, "novelty_score": 0.75,
            "complexity_score": 0.8, "quality_score": 0.85}  # what the client sends for these arguments
    IdempotencyRecord.objects.create(customer=tenant.customer, method="POST", path="/evaluate", key="busy",
                                     request_hash=body_fingerprint(body), created_at=timezone.now())

    with pytest.raises(ConflictError) as conflict:
        client.evaluate(proposal_summary=SUMMARY, idempotency_key="busy")

    assert conflict.value.status_code == 409
    assert conflict.value.message.startswith("Concurrent request with the same Idempotency-Key is still in flight")


def test_risk_check_health_profile_and_usage(make_tenant, connect):
    tenant = make_tenant("Acme", tier="team")
    client = connect(tenant.plaintext)
    client.evaluate(proposal_summary=SUMMARY)

    safe = client.risk_check(risk_score=0.1)
    unsafe = client.risk_check(risk_score=0.3, threshold=0.3, action_description="drop a table", agent_id="a1")
    health = client.health()
    profile = client.get_profile()
    usage = client.get_usage()
    last_year = client.get_usage(month="2001-01")

    assert (safe.safe, safe.risk_score, safe.threshold) == (True, 0.1, 0.3)
    assert (unsafe.safe, unsafe.risk_score, unsafe.threshold) == (False, 0.3, 0.3)
    assert unsafe.rationale and unsafe.request_id.startswith("req_")
    assert health.status == "ok"
    assert health.checks["database"]["ok"] is True and health.checks["config"]["ok"] is True
    assert health.version
    assert profile.customer_id == tenant.customer.customer_id
    assert profile.name == "Acme" and profile.tier == "team" and profile.status == "active"
    assert profile.tier_details.monthly_evaluations == 100_000
    assert profile.tier_details.rate_per_minute == 600
    assert profile.tier_details.max_keys == 10
    assert usage.total_evaluations == 1 and usage.total_risk_checks == 2 and usage.total_calls == 3
    assert usage.channels["sdk"] == 3  # every call of the client is on the sdk channel
    assert usage.quota == 100_000 and usage.quota_remaining == 99_999
    assert last_year.month == "2001-01" and last_year.total_calls == 0


def test_decisions_list_and_detail(make_tenant, connect):
    client = connect(make_tenant("Acme").plaintext)
    made = [client.evaluate(proposal_summary=f"change {n}") for n in range(3)]

    listed = client.list_decisions()
    limited = client.list_decisions(limit=2)
    this_month = client.list_decisions(month=timezone.now().strftime("%Y-%m"))
    detail = client.get_decision(made[0].decision_id)

    assert [d.decision_id for d in listed] == [d.decision_id for d in reversed(made)]
    assert [d.decision_id for d in limited] == [made[2].decision_id, made[1].decision_id]
    assert len(this_month) == 3
    assert all(d.status == "proceed" and d.gates.risk.value == 0.5 for d in listed)
    assert detail.decision_id == made[0].decision_id
    assert detail.status == "proceed" and detail.gates_passed == 5
    with pytest.raises(AegisError) as missing:
        client.get_decision(str(uuid.uuid4()))
    assert missing.value.status_code == 404
    assert "No decision" in missing.value.message


def test_keys_create_list_revoke(make_tenant, connect):
    tenant = make_tenant("Acme")
    client = connect(tenant.plaintext)

    created = client.create_key("ci")
    listed = client.list_keys()
    with pytest.raises(ConflictError):  # free tier: 2 keys
        client.create_key("one too many")
    client.revoke_key(created.key_id)
    after = {k.key_id: k.enabled for k in client.list_keys()}

    assert created.name == "ci" and created.key.startswith("aegis_") and created.key_id.startswith("key_")
    assert {k.key_id for k in listed} == {tenant.key.key_id, created.key_id}
    assert all(k.key is None for k in listed)
    assert after == {tenant.key.key_id: True, created.key_id: False}
    with pytest.raises(AuthenticationError):
        connect(created.key).get_profile()


def test_a_bad_key_raises_authentication_error(connect, make_tenant):
    make_tenant("Acme")
    client = connect("aegis_thisKeyWasNeverIssued")

    with pytest.raises(AuthenticationError) as on_evaluate:
        client.evaluate(proposal_summary=SUMMARY)
    with pytest.raises(AuthenticationError) as on_profile:
        client.get_profile()

    for error in (on_evaluate.value, on_profile.value):
        assert error.status_code == 401
        assert error.message == "Invalid API key"
        assert error.request_id and error.request_id.startswith("req_")
    assert Decision.objects.count() == 0


def test_unknown_and_invalid_fields_raise_validation_error(make_tenant, connect):
    client = connect(make_tenant("Acme").plaintext)

    with pytest.raises(ValidationError) as unknown:
        client.evaluate(proposal_summary=SUMMARY, requested_by="ci", priority=1)
    with pytest.raises(ValidationError) as invalid:
        client.evaluate(proposal_summary=SUMMARY, estimated_impact="huge")  # not checked by the client

    assert unknown.value.status_code == 422
    assert unknown.value.message == "Unknown field(s): requested_by, priority"
    assert invalid.value.status_code == 400
    assert "estimated_impact" in invalid.value.message
    assert Decision.objects.count() == 0


def test_an_exhausted_quota_raises_rate_limit_without_retry_after(make_tenant, connect):
    client = connect(make_tenant("Thrifty", monthly_evaluations=1).plaintext)
    client.evaluate(proposal_summary=SUMMARY)

    with pytest.raises(RateLimitError) as quota:
        client.evaluate(proposal_summary=SUMMARY)

    assert quota.value.status_code == 429
    assert quota.value.retry_after is None


def test_the_per_minute_throttle_raises_rate_limit_with_retry_after(make_tenant, connect, pinned_clock):
    client = connect(make_tenant("Chatty", rate_per_minute=2).plaintext)
    client.get_profile()
    client.evaluate(proposal_summary=SUMMARY)

    with pytest.raises(RateLimitError) as throttled:
        client.evaluate(proposal_summary=SUMMARY)
    with pytest.raises(RateLimitError) as throttled_get:
        client.get_usage()

    assert throttled.value.retry_after is not None and 1 <= throttled.value.retry_after <= 60
    assert throttled_get.value.retry_after is not None


def test_sandbox_mode_without_a_key(connect, settings):
    settings.SANDBOX_DAILY_LIMIT = 2
    client = connect(None)

    first = client.evaluate(proposal_summary=SUMMARY)
    second = client.evaluate(proposal_summary=SUMMARY)
    with pytest.raises(SandboxLimitError):
        client.evaluate(proposal_summary=SUMMARY)

    assert first.sandbox is True and second.sandbox is True
    assert (first.remaining, second.remaining) == (1, 0)
    assert first.status == "proceed" and first.gates.risk.value == 0.5
    assert Decision.objects.count() == 0
    assert client.health().status == "ok"


# --- the governance loop: keys the client ignores must not break its parsing ------------------

def _custodians():
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from workflows.roles import ROLE_GROUPS, Role
    from workflows.services import actor_for

    actors = []
    for username, role in (("rita", Role.RISK_LEAD), ("sam", Role.SECURITY_LEAD)):
        user = get_user_model().objects.create_user(username, password=None)
        user.groups.add(Group.objects.get_or_create(name=ROLE_GROUPS[role])[0])
        actors.append(actor_for(user))
    return actors


def _raw(server, key: str, method: str, path: str, body=None) -> dict:
    import httpx

    response = httpx.request(method, server.url + path, json=body, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code in (200, 201), response.text
    return response.json()


def test_every_review_stage_of_a_halt_parses_in_the_client(make_tenant, connect, server):
    from workflows.services import fire_event

    tenant = make_tenant("Acme")
    client = connect(tenant.plaintext)
    halted = client.evaluate(proposal_summary="Novel router", novelty_score=0.9)
    assert halted.status == "halt" and halted.override_eligible is True

    override = _raw(server, tenant.plaintext, "POST", f"/api/decisions/{halted.decision_id}/override",
                    {"justification": "Launch depends on it"})
    seen = []
    custodians = _custodians()
    for expected, signer in ((("override_requested", "halt", "pending"), custodians[0]),
                             (("override_requested", "halt", "partial"), custodians[1]),
                             (("approved", "proceed", "approved"), None)):
        seen.append(client.get_decision(halted.decision_id))
        raw = _raw(server, tenant.plaintext, "GET", f"/customer/decisions/{halted.decision_id}")["decision"]
        assert (raw["review_state"], raw["effective_status"], raw["override"]["status"]) == expected
        if signer is not None:
            fire_event(override["workflow_id"], "approve", actor=signer, comment="Reviewed")
    for parsed in seen:
        assert parsed.decision_id == halted.decision_id and parsed.status == "halt"
        assert parsed.failing_gates == ["novelty"] and parsed.gates.novelty.passed is False


def test_lists_mixing_reviewed_and_unreviewed_decisions_parse_in_both_clients(make_tenant, connect, server):
    import asyncio

    from aegis import AsyncAegis

    tenant = make_tenant("Acme")
    client = connect(tenant.plaintext)
    made = [client.evaluate(proposal_summary="ok"), client.evaluate(proposal_summary="big", estimated_impact="high"),
            client.evaluate(proposal_summary="novel", novelty_score=0.9),
            client.evaluate(proposal_summary="shadow", novelty_score=0.9, shadow_mode=True)]
    _raw(server, tenant.plaintext, "POST", f"/api/decisions/{made[2].decision_id}/override",
         {"justification": "needed"})
    listed = client.list_decisions()
    assert [d.status for d in listed] == ["halt", "halt", "pause", "proceed"]
    raw = _raw(server, tenant.plaintext, "GET", "/customer/decisions")["decisions"]
    assert [d["review_state"] for d in raw] == [None, "override_requested", "in_review", None]

    async def read_async():
        async with AsyncAegis(api_key=tenant.plaintext, base_url=server.url, max_retries=0, timeout=10.0) as aclient:
            return await aclient.list_decisions(), await aclient.get_decision(made[2].decision_id)

    async_listed, async_detail = asyncio.run(read_async())
    assert [d.decision_id for d in async_listed] == [d.decision_id for d in listed]
    assert async_detail.status == "halt" and async_detail.override_eligible is True
