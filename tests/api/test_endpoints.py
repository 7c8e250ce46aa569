"""Every client-facing endpoint of API.md, with the shapes the official client reads, plus
the transport rules every response must follow (request id, version, JSON errors, no
redirects)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
from api_support import EXAMPLE_A, ApiClient, assert_json_error, tables_containing
from django.test import override_settings

from governance import __version__, services
from governance.engine.inputs import parse_proposal
from governance.models import ApiKey, Decision, UsageCounter

pytestmark = pytest.mark.django_db

DECISION_KEYS = {
    "status", "confidence", "gates_passed", "gates_failed", "failing_gates", "gates_skipped", "rationale",
    "next_steps", "constraints", "decision_id", "timestamp", "override_eligible", "override_requires",
    "shadow_mode", "config_version", "gates",
}
GATE_KEYS = {"passed", "value", "threshold", "confidence", "message"}


def evaluate(api: ApiClient, **changes):
    response = api.post("/evaluate", {**EXAMPLE_A, **changes})
    assert response.status_code == 200, response.content
    return response.json()


def month_before(moment: datetime) -> str:
    return (moment.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")


def this_month() -> str:
    return datetime.now(dt_timezone.utc).strftime("%Y-%m")


# --- /health ------------------------------------------------------------------------------

@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-real-key"}, {"X-Api-Key": "nope"}],
                         ids=["no-key", "bogus-bearer", "bogus-x-api-key"])
def test_health_needs_no_key_and_reports_every_check_ok(headers):
    response = ApiClient().get("/health", headers=headers)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert body["version"] == __version__ == response["X-AEGIS-Version"]
    assert isinstance(body["stage"], str) and body["stage"]
    assert body["checks"]["config"]["ok"] is True
    assert body["checks"]["database"]["ok"] is True
    assert all(check["ok"] is True for check in body["checks"].values())


def test_health_is_503_degraded_when_a_check_fails(anon, monkeypatch):
    def broken():
        raise LookupError("no configuration version is stored")

    monkeypatch.setattr("governance.api.views.active_config", broken)

    response = anon.get("/health")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["config"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True
    assert response["X-AEGIS-Request-Id"] and response["X-AEGIS-Version"] == __version__


# --- /evaluate ----------------------------------------------------------------------------

def test_evaluate_answers_200_with_the_full_decision_shape(api):
    response = api.post("/evaluate", EXAMPLE_A)

    assert response.status_code == 200  # never 201
    body = response.json()
    assert DECISION_KEYS <= set(body)
    assert body["status"] in {"proceed", "pause", "escalate", "halt"}
    assert uuid.UUID(body["decision_id"]).version == 4
    assert str(uuid.UUID(body["decision_id"])) == body["decision_id"]
    stamp = datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00"))
    assert stamp.utcoffset() == timedelta(0)
    assert abs(datetime.now(dt_timezone.utc) - stamp) < timedelta(minutes=1)
    for name in ("failing_gates", "gates_skipped", "next_steps", "constraints", "override_requires"):
        assert isinstance(body[name], list)
    assert isinstance(body["gates_passed"], int) and isinstance(body["gates_failed"], int)
    assert isinstance(body["confidence"], float)
    assert isinstance(body["override_eligible"], bool) and isinstance(body["shadow_mode"], bool)
    assert isinstance(body["config_version"], int)
    assert isinstance(body["rationale"], str) and body["rationale"]
    for name, gate in body["gates"].items():
        assert set(gate) == GATE_KEYS, name
        assert isinstance(gate["passed"], bool)
    assert body["gates_passed"] + body["gates_failed"] == len(body["gates"])
    assert "drift" not in body  # drift only when it was computed


def test_worked_example_a_proceeds_with_five_gates_and_utility_skipped(api):
    body = evaluate(api)

    assert body["status"] == "proceed"
    assert body["gates_passed"] == 5
    assert body["gates_failed"] == 0
    assert body["failing_gates"] == []
    assert body["gates_skipped"] == ["utility"]
    assert set(body["gates"]) == {"risk", "profit", "novelty", "complexity", "quality"}
    assert body["gates"]["risk"]["value"] == 0.5
    assert body["confidence"] == 0.5
    assert body["override_eligible"] is False
    assert body["shadow_mode"] is False


def test_evaluate_with_drift_data_reports_drift(api):
    baseline = [0.1 + 0.001 * i for i in range(40)]
    body = evaluate(api, drift_baseline_data=baseline, drift_current_data=baseline)

    assert body["drift"]["status"] == "normal"
    assert set(body["drift"]) >= {"status", "kl_divergence", "action", "message"}


@pytest.mark.parametrize(("earlier", "drift_expected"), [(29, True), (28, False)])
def test_drift_without_a_current_sample_uses_the_tenants_recent_risk_including_this_one(
        make_tenant, earlier, drift_expected):
    """ENGINE.md §4: the current sample is the tenant's risk_proposed values of the last
    kl_window_days, this proposal included; drift needs 30 of them (kl_min_samples)."""
    tenant, stranger = make_tenant("Acme", tier="team"), make_tenant("Stranger", tier="team")
    for _ in range(earlier):
        evaluate(ApiClient(tenant.plaintext))
    for _ in range(5):  # another tenant's decisions never count
        evaluate(ApiClient(stranger.plaintext))

    body = evaluate(ApiClient(tenant.plaintext), drift_baseline_data=[0.05] * 30)

    assert ("drift" in body) is drift_expected
    if drift_expected:
        assert body["drift"]["status"] == "normal"
        assert body["drift"]["kl_divergence"] == 0.0


def decide_at(tenant, moment: datetime, **changes) -> str:
    """A decision of `tenant` made at `moment` (stored decisions never change, so tests that
    need older ones make them then); its decision_id."""
    ctx = services.CallContext(customer=tenant.customer, api_key=tenant.key)
    return services.evaluate_proposal(ctx, parse_proposal({**EXAMPLE_A, **changes}), now=moment)["decision_id"]


def test_drift_from_tenant_history_ignores_decisions_older_than_the_window(make_tenant):
    tenant = make_tenant("Acme", tier="team")
    for _ in range(29):
        decide_at(tenant, datetime.now(dt_timezone.utc) - timedelta(days=31))  # kl_window_days 30

    body = evaluate(ApiClient(tenant.plaintext), drift_baseline_data=[0.05] * 30)

    assert "drift" not in body


def test_a_shadow_decision_is_reported_and_recorded_as_shadow(api):
    body = evaluate(api, shadow_mode=True)

    assert body["shadow_mode"] is True
    assert Decision.objects.get(decision_id=body["decision_id"]).shadow is True


@pytest.mark.parametrize(("headers", "channel"), [
    ({"X-AEGIS-Client": "python-sdk"}, "sdk"),
    ({}, "api"),
    ({"X-AEGIS-Client": "curl"}, "api"),
], ids=["python-sdk", "no-client-header", "other-client"])
def test_evaluate_stores_the_decision_with_its_channel(tenant, api_for, headers, channel):
    body = evaluate(api_for(tenant, **headers))

    stored = Decision.objects.get(decision_id=body["decision_id"])
    assert stored.customer == tenant.customer
    assert stored.api_key == tenant.key
    assert stored.channel == channel
    assert stored.status == body["status"]
    review = {"workflow_id": None, "review_state": None, "effective_status": "proceed", "override": None}
    assert stored.response == {key: value for key, value in body.items() if key not in review}
    assert {key: body[key] for key in review} == review


# --- /sandbox/evaluate --------------------------------------------------------------------

@override_settings(SANDBOX_DAILY_LIMIT=2)
def test_sandbox_counts_down_then_answers_429_without_retry_after(anon):
    first = anon.post("/sandbox/evaluate", EXAMPLE_A)
    second = anon.post("/sandbox/evaluate", EXAMPLE_A)
    third = anon.post("/sandbox/evaluate", EXAMPLE_A)

    assert first.status_code == second.status_code == 200
    assert first.json()["sandbox"] is True and second.json()["sandbox"] is True
    assert (first.json()["remaining"], second.json()["remaining"]) == (1, 0)
    assert first.json()["status"] == "proceed"
    assert DECISION_KEYS <= set(first.json())
    assert_json_error(third, 429)
    assert "Retry-After" not in third


def test_sandbox_needs_no_key_and_ignores_a_bogus_one(anon):
    response = anon.post("/sandbox/evaluate", EXAMPLE_A, headers={"Authorization": "Bearer bogus"})

    assert response.status_code == 200, response.content
    assert response.json()["sandbox"] is True
    assert response.json()["remaining"] == 9  # SANDBOX_DAILY_LIMIT defaults to 10


# --- /risk-check --------------------------------------------------------------------------

@pytest.mark.parametrize(("risk_score", "threshold", "safe"), [
    (0.1, 0.3, True),
    (0.2999, 0.3, True),
    (0.3, 0.3, False),  # equal is unsafe
    (0.5, 0.3, False),
    (0.0, 0.0, False),
    (0.9, 1.0, True),
])
def test_risk_check_is_safe_only_below_the_threshold(api, risk_score, threshold, safe):
    response = api.post("/risk-check", {"risk_score": risk_score, "threshold": threshold,
                                        "action_description": "deploy", "agent_id": "bot-1"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["safe"] is safe
    assert body["risk_score"] == risk_score
    assert body["threshold"] == threshold
    assert isinstance(body["rationale"], str) and body["rationale"]


def test_risk_check_threshold_defaults_to_0_3(api):
    assert api.post("/risk-check", {"risk_score": 0.29}).json() | {"rationale": ""} == {
        "safe": True, "risk_score": 0.29, "threshold": 0.3, "rationale": ""}
    assert api.post("/risk-check", {"risk_score": 0.3}).json()["safe"] is False


@pytest.mark.parametrize("body", [{}, {"risk_score": 1.5}, {"risk_score": "0.1"}, {"risk_score": True},
                                  {"risk_score": 0.1, "threshold": -0.1}])
def test_risk_check_rejects_a_missing_or_bad_score_with_400(api, body):
    assert_json_error(api.post("/risk-check", body), 400)


# --- /customer/profile --------------------------------------------------------------------

def test_profile_describes_the_calling_tenant_and_its_tier(tenant, api):
    response = api.get("/customer/profile")

    assert response.status_code == 200, response.content
    body = response.json()
    customer = body["customer"]
    assert set(customer) == {"customer_id", "name", "email", "company", "tier", "status", "created_at",
                             "updated_at"}
    assert customer["customer_id"] == tenant.customer.customer_id
    assert customer["name"] == "Acme"
    assert customer["tier"] == "free"
    assert customer["status"] == "active"
    datetime.fromisoformat(customer["created_at"].replace("Z", "+00:00"))
    assert body["tier_details"] == {
        "name": "free", "display_name": "Free", "monthly_evaluations": 1000, "rate_per_minute": 60,
        "max_keys": 2, "overage_per_eval": 0.0, "monthly_price_usd": 0,
        "features": body["tier_details"]["features"],
    }
    assert isinstance(body["tier_details"]["features"], list)


# --- /customer/usage ----------------------------------------------------------------------

def test_usage_counts_evaluations_by_channel(tenant, api_for):
    sdk = api_for(tenant, **{"X-AEGIS-Client": "python-sdk"})
    plain = api_for(tenant)
    evaluate(sdk)
    evaluate(sdk)
    evaluate(plain)

    response = plain.get("/customer/usage")

    assert response.status_code == 200, response.content
    assert response.json() == {
        "customer_id": tenant.customer.customer_id, "month": this_month(),
        "total_evaluations": 3, "total_risk_checks": 0, "total_calls": 3,
        "channels": {"sdk": 2, "api": 1, "mcp": 0},
        "quota": 1000, "quota_remaining": 997, "quota_percent": 0.3,
    }


def test_usage_counts_risk_checks_as_calls_but_not_against_the_quota(api):
    evaluate(api)
    api.post("/risk-check", {"risk_score": 0.1})
    api.post("/risk-check", {"risk_score": 0.9})

    body = api.get("/customer/usage").json()

    assert (body["total_evaluations"], body["total_risk_checks"], body["total_calls"]) == (1, 2, 3)
    assert body["quota_remaining"] == 999


def test_usage_for_a_month_reports_only_that_month(tenant, api):
    evaluate(api)
    last_month = month_before(datetime.now(dt_timezone.utc))
    UsageCounter.objects.create(customer=tenant.customer, month=last_month, kind="evaluation",
                                channel="sdk", count=7)

    current = api.get(f"/customer/usage/{this_month()}")
    previous = api.get(f"/customer/usage/{last_month}")
    never = api.get("/customer/usage/2001-01")

    assert current.status_code == previous.status_code == never.status_code == 200
    assert current.json() == api.get("/customer/usage").json()
    assert previous.json()["month"] == last_month
    assert previous.json()["total_evaluations"] == 7
    assert previous.json()["channels"] == {"sdk": 7, "api": 0, "mcp": 0}
    assert never.json()["total_calls"] == 0
    assert never.json()["quota_remaining"] == 1000


@pytest.mark.parametrize("month", ["2026-13", "2026-00", "2026-1", "26-01", "2026_01", "abcd-ef", "2026-01-01"])
def test_usage_for_a_malformed_month_is_400(api, month):
    body = assert_json_error(api.get(f"/customer/usage/{month}"), 400)
    assert "month" in body["error"]


# --- /customer/keys -----------------------------------------------------------------------

def test_keys_list_shows_metadata_but_never_a_secret(tenant, api):
    response = api.get("/customer/keys")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == 1
    [key] = body["keys"]
    assert {"key_id", "name", "created_at", "enabled"} <= set(key)
    assert key["key_id"] == tenant.key.key_id
    assert key["name"] == "default"
    assert key["enabled"] is True
    assert isinstance(key["created_at"], int)
    assert abs(key["created_at"] - datetime.now(dt_timezone.utc).timestamp()) < 60
    assert "key" not in key and "key_hash" not in key
    assert tenant.plaintext not in response.content.decode()


def test_created_key_is_shown_once_and_works(tenant, api):
    response = api.post("/customer/keys", {"name": "  ci  "})

    assert response.status_code in (200, 201), response.content
    created = response.json()
    assert created["name"] == "ci"
    assert created["key"].startswith("aegis_")
    assert created["key_id"] != tenant.key.key_id
    assert ApiClient(created["key"]).get("/customer/profile").status_code == 200
    listing = api.get("/customer/keys")
    assert listing.json()["count"] == 2
    assert created["key"] not in listing.content.decode()


def test_the_database_never_holds_a_key_plaintext_only_its_hash(tenant, api):
    created = api.post("/customer/keys", {"name": "ci"}).json()

    stored = ApiKey.objects.get(key_id=created["key_id"])
    assert stored.key_hash != created["key"]
    assert len(stored.key_hash) == 64
    assert tables_containing(tenant.plaintext) == []
    assert tables_containing(created["key"]) == []


def test_the_database_never_holds_a_plaintext_even_for_an_idempotent_creation(api):
    """The official client sends an Idempotency-Key with every create_key call, so this is
    the normal path: the stored replay must not keep the secret in clear."""
    created = api.post("/customer/keys", {"name": "ci"}, headers={"Idempotency-Key": str(uuid.uuid4())}).json()

    assert tables_containing(created["key"]) == []


def test_creating_keys_beyond_the_tier_maximum_is_409(api):
    assert api.post("/customer/keys", {"name": "second"}).status_code in (200, 201)  # free tier: 2 keys

    refused = api.post("/customer/keys", {"name": "third"})

    assert_json_error(refused, 409)
    assert api.get("/customer/keys").json()["count"] == 2


def test_a_revoked_key_answers_401_and_frees_a_slot(tenant, api):
    spare = api.post("/customer/keys", {"name": "spare"}).json()

    revoked = api.delete(f"/customer/keys/{spare['key_id']}")

    assert revoked.status_code == 200, revoked.content
    assert revoked.json()["revoked"] is True
    refused = ApiClient(spare["key"]).get("/customer/profile")
    assert assert_json_error(refused, 401)["error"] == "Invalid API key"
    listed = {key["key_id"]: key["enabled"] for key in api.get("/customer/keys").json()["keys"]}
    assert listed[spare["key_id"]] is False
    assert listed[tenant.key.key_id] is True
    assert api.post("/customer/keys", {"name": "replacement"}).status_code in (200, 201)


def test_revoking_an_unknown_key_is_404(api):
    assert_json_error(api.delete("/customer/keys/key_doesnotexist"), 404)


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": "   "}, {"name": 5}, {"name": "x" * 201}])
def test_creating_a_key_without_a_proper_name_is_400(api, body):
    assert_json_error(api.post("/customer/keys", body), 400)
    assert ApiKey.objects.count() == 1


# --- /customer/decisions ------------------------------------------------------------------

def test_decisions_are_listed_newest_first(api):
    ids = [evaluate(api, proposal_summary=f"change {n}")["decision_id"] for n in range(3)]

    response = api.get("/customer/decisions")

    assert response.status_code == 200, response.content
    listed = response.json()["decisions"]
    assert [d["decision_id"] for d in listed] == ids[::-1]
    assert all(DECISION_KEYS <= set(d) for d in listed)


def test_decisions_limit_defaults_to_50_and_allows_up_to_500(make_tenant):
    tenant = make_tenant("Busy", tier="team")  # 55 calls: more than a minute's worth on the free tier
    api = ApiClient(tenant.plaintext)
    for n in range(51):
        evaluate(api, proposal_summary=f"change {n}")

    assert len(api.get("/customer/decisions").json()["decisions"]) == 50
    assert len(api.get("/customer/decisions", query={"limit": 500}).json()["decisions"]) == 51
    assert len(api.get("/customer/decisions", query={"limit": 2}).json()["decisions"]) == 2
    newest = Decision.objects.filter(customer=tenant.customer).order_by("-created_at", "-id")[0]
    assert api.get("/customer/decisions", query={"limit": 1}).json()["decisions"][0]["decision_id"] == str(
        newest.decision_id)


@pytest.mark.parametrize("limit", ["0", "501", "-1", "abc", "", "1.5", " 5",
                                   pytest.param("²", id="superscript-two")])  # "²".isdigit() is True
def test_decisions_with_an_invalid_limit_is_400(api, limit):
    body = assert_json_error(api.get("/customer/decisions", query={"limit": limit}), 400)
    assert "limit" in body["error"]


def test_decisions_month_filter(tenant, api):
    now = datetime.now(dt_timezone.utc)
    old = decide_at(tenant, now.replace(day=1) - timedelta(days=3), proposal_summary="old")
    new = evaluate(api, proposal_summary="new")["decision_id"]

    this = api.get("/customer/decisions", query={"month": this_month()}).json()["decisions"]
    before = api.get("/customer/decisions", query={"month": month_before(now)}).json()["decisions"]

    assert [d["decision_id"] for d in this] == [new]
    assert [d["decision_id"] for d in before] == [old]
    assert_json_error(api.get("/customer/decisions", query={"month": "2026-13"}), 400)


def test_decision_detail_returns_the_stored_decision(api):
    body = evaluate(api)

    response = api.get(f"/customer/decisions/{body['decision_id']}")

    assert response.status_code == 200, response.content
    assert response.json() == {"decision": body}


@pytest.mark.parametrize("decision_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_decision_detail_of_an_unknown_id_is_404(api, decision_id):
    assert_json_error(api.get(f"/customer/decisions/{decision_id}"), 404)


# --- transport rules ----------------------------------------------------------------------

TRANSPORT_CASES = {
    "health": ("GET", "/health", None, False),
    "evaluate-200": ("POST", "/evaluate", EXAMPLE_A, True),
    "evaluate-400": ("POST", "/evaluate", {"proposal_summary": ""}, True),
    "evaluate-401": ("POST", "/evaluate", EXAMPLE_A, False),
    "evaluate-405": ("GET", "/evaluate", None, True),
    "evaluate-422": ("POST", "/evaluate", {**EXAMPLE_A, "nope": 1}, True),
    "sandbox-200": ("POST", "/sandbox/evaluate", EXAMPLE_A, False),
    "profile-200": ("GET", "/customer/profile", None, True),
    "keys-409": ("POST", "/customer/keys", {"name": "x"}, True),  # run twice: the 2nd is over max_keys
    "unknown-path-404": ("GET", "/no/such/path", None, True),
    "trailing-slash-404": ("POST", "/evaluate/", EXAMPLE_A, True),
}


@pytest.mark.parametrize("case", TRANSPORT_CASES, ids=list(TRANSPORT_CASES))
def test_every_response_carries_a_fresh_request_id_and_the_version(tenant, case):
    method, path, body, keyed = TRANSPORT_CASES[case]
    client = ApiClient(tenant.plaintext if keyed else None)

    first = client.request(method, path, body)
    second = client.request(method, path, body)

    for response in (first, second):
        assert response["X-AEGIS-Version"] == __version__
        assert response["X-AEGIS-Request-Id"]
    assert first["X-AEGIS-Request-Id"] != second["X-AEGIS-Request-Id"]
    if second.status_code >= 400:
        assert_json_error(second, second.status_code)


@pytest.mark.parametrize("path", ["/evaluate/", "/health/", "/customer/keys/", "/customer/decisions/",
                                  "/customer/profile/", "/customer/usage/", "/risk-check/", "/sandbox/evaluate/",
                                  "/nope", "/api/nope"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_no_path_is_redirected_unknown_paths_are_json_404(api, path, method):
    response = api.request(method, path, EXAMPLE_A if method == "POST" else None)

    assert not 300 <= response.status_code < 400
    assert "Location" not in response
    assert_json_error(response, 404)


def test_an_unsupported_method_is_a_json_405(api):
    assert_json_error(api.request("PUT", "/evaluate", EXAMPLE_A), 405)


def test_a_non_json_content_type_is_a_json_415(api):
    response = api.client.post("/evaluate", "proposal_summary=x", content_type="application/x-www-form-urlencoded",
                               secure=True, headers=api.headers)

    assert_json_error(response, 415)
    assert Decision.objects.count() == 0


def test_a_request_for_a_foreign_host_is_a_json_400(anon):
    """Errors Django raises before any view (here DisallowedHost) are JSON too."""
    response = anon.get("/health", headers={"Host": "attacker.example"})

    assert_json_error(response, 400)
