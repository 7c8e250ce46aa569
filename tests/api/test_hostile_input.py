"""Hostile input (docs/decisions.md, "Hostile input"): what hand fuzzing found, each a clear
4xx JSON error naming the limit, key or field, with nothing stored.

- JSON bodies nested deeper than AEGIS_JSON_MAX_DEPTH (32), on every API view;
- bodies over AEGIS_MAX_BODY_BYTES, refused with 413 from the Content-Length alone;
- duplicate keys in a JSON object;
- NUL characters in JSON strings and keys, URL paths, query parameters, headers, form fields;
- months that are not exactly YYYY-MM (a trailing newline, year 0000).

The same requests against a real gunicorn are in tests/integration/test_hostile_gunicorn.py.
"""

from __future__ import annotations

import io
import json

import pytest
from api_support import EXAMPLE_A, ApiClient, assert_json_error
from django.contrib.auth import get_user_model
from django.test import Client

from governance.api.errors import ApiError
from governance.api.parsers import JSONBodyParser
from governance.models import ApiKey, Decision, IdempotencyRecord, SandboxUsage, UsageCounter

pytestmark = pytest.mark.django_db

MAX_FLOAT_REPR = "-2.2250738585072014e-308"  # the longest text a float's repr() takes: 24 characters


def nested(depth: int) -> str:
    """JSON text of exactly `depth` levels: objects around an empty array."""
    return '{"a":' * (depth - 1) + "[]" + "}" * (depth - 1)


def with_metadata(metadata_json: str, body: dict | None = None) -> str:
    """The JSON text of `body` (example A) with `metadata` spliced in as given."""
    return json.dumps(body or EXAMPLE_A)[:-1] + f', "metadata": {metadata_json}}}'


def assert_nothing_stored():
    assert Decision.objects.count() == 0
    assert UsageCounter.objects.count() == 0
    assert IdempotencyRecord.objects.count() == 0


@pytest.fixture
def staff_client(db):
    client = Client()
    client.force_login(get_user_model().objects.create_user("stan", password=None, is_staff=True))
    return client


# --- depth --------------------------------------------------------------------------------

@pytest.mark.parametrize("depth", [33, 990, 100_000])
@pytest.mark.parametrize("who, status", [("anonymous", 401), ("wrong key", 401), ("tenant's key", 400)])
def test_a_deep_body_on_evaluate_is_a_400_naming_the_limit_and_is_not_parsed_before_auth(tenant, who, status, depth):
    key = {"anonymous": None, "wrong key": "aegis_not-a-key", "tenant's key": tenant.plaintext}[who]

    response = ApiClient(key).post("/evaluate", raw=with_metadata(nested(depth - 1)))

    error = assert_json_error(response, status)
    if status == 400:
        assert error["code"] == "json_too_deep"
        assert "at most 32 levels" in error["error"]
    assert_nothing_stored()


@pytest.mark.parametrize("depth", [33, 990, 100_000])
def test_a_deep_body_on_the_keyless_sandbox_is_a_400_and_does_not_use_up_the_limit(anon, settings, depth):
    settings.SANDBOX_DAILY_LIMIT = 1

    refused = anon.post("/sandbox/evaluate", raw=with_metadata(nested(depth - 1)))
    allowed = anon.post("/sandbox/evaluate", EXAMPLE_A)

    assert assert_json_error(refused, 400)["code"] == "json_too_deep"
    assert allowed.status_code == 200, allowed.content
    assert allowed.json()["remaining"] == 0


def test_a_body_exactly_32_levels_deep_is_accepted(api):
    response = api.post("/evaluate", raw=with_metadata(nested(31)))

    assert response.status_code == 200, response.content
    assert Decision.objects.count() == 1


def test_the_depth_limit_is_a_setting(api, settings):
    settings.AEGIS_JSON_MAX_DEPTH = 3
    assert api.post("/evaluate", raw=with_metadata(nested(2))).status_code == 200

    error = assert_json_error(api.post("/evaluate", raw=with_metadata(nested(3))), 400)

    assert error["code"] == "json_too_deep"
    assert "at most 3 levels" in error["error"]


def test_brackets_inside_strings_do_not_count_as_depth(api):
    metadata = json.dumps({"note": "[[[[{{{{" * 20 + '\\"]]}' * 10})

    response = api.post("/evaluate", raw=with_metadata(metadata))

    assert response.status_code == 200, response.content


# Every view that reads a JSON body, reached by who may use it; each must refuse a deep body.
KEYED_JSON_POSTS = ["/evaluate", "/risk-check", "/customer/keys", "/api/workflows/proposals",
                    "/api/decisions/00000000-0000-4000-8000-000000000000/override"]
SESSION_JSON_POSTS = ["/api/calibration/proposals", "/api/calibration/validate", "/api/workflows/consensus",
                      "/api/decisions/00000000-0000-4000-8000-000000000000/events/approve"]


@pytest.mark.parametrize("path", KEYED_JSON_POSTS)
def test_every_keyed_json_post_refuses_a_deep_body(api, path):
    error = assert_json_error(api.post(path, raw=nested(1000)), 400)

    assert error["code"] == "json_too_deep"
    assert ApiKey.objects.count() == 1
    assert_nothing_stored()


@pytest.mark.parametrize("path", SESSION_JSON_POSTS)
def test_every_signed_in_json_post_refuses_a_deep_body(staff_client, path):
    response = staff_client.post(path, nested(1000), content_type="application/json", secure=True)

    assert assert_json_error(response, 400)["code"] == "json_too_deep"


@pytest.mark.parametrize("path", SESSION_JSON_POSTS)
def test_api_views_take_json_only(staff_client, path):
    """One parser for every API view: form bodies are not parsed there at all."""
    response = staff_client.post(path, {"subject": "x"}, secure=True)  # multipart

    assert assert_json_error(response, 415)["code"] == "unsupported_media_type"


# --- duplicate keys -----------------------------------------------------------------------

def test_a_duplicate_key_is_a_400_naming_it_instead_of_last_wins(api):
    raw = json.dumps({**EXAMPLE_A, "estimated_impact": "low"})[:-1] + ', "estimated_impact": "critical"}'

    error = assert_json_error(api.post("/evaluate", raw=raw), 400)

    assert error["code"] == "duplicate_key"
    assert '"estimated_impact"' in error["error"]
    assert_nothing_stored()


def test_a_duplicate_key_inside_metadata_is_refused_too(api):
    error = assert_json_error(api.post("/evaluate", raw=with_metadata('{"team": "a", "team": "b"}')), 400)

    assert error["code"] == "duplicate_key"
    assert '"team"' in error["error"]


def test_the_same_key_in_different_objects_is_fine(api):
    response = api.post("/evaluate", {**EXAMPLE_A, "metadata": {"a": {"a": 1}, "b": [{"a": 2}, {"a": 3}]}})

    assert response.status_code == 200, response.content


# --- NUL characters -----------------------------------------------------------------------

@pytest.mark.parametrize("changes, named", [
    ({"proposal_summary": "Deploy\u0000 v2"}, "proposal_summary"),
    ({"agent_id": "bot\u0000"}, "agent_id"),
    ({"metadata": {"note": "a\u0000b"}}, 'metadata["note"]'),
    ({"metadata": {"tags": ["ok", "\u0000"]}}, 'metadata["tags"][1]'),
    ({"metadata": {"k\u0000": 1}}, "a key of metadata"),
])
def test_nul_in_a_json_string_is_a_400_naming_the_field(api, changes, named):
    error = assert_json_error(api.post("/evaluate", {**EXAMPLE_A, **changes}), 400)

    assert error["code"] == "nul_character"
    assert error["error"].startswith(f"{named} must not contain NUL characters")
    assert_nothing_stored()


def test_nul_in_an_api_key_name_is_refused_and_no_key_is_made(api):
    error = assert_json_error(api.post("/customer/keys", {"name": "ops\u0000key"}), 400)

    assert error["code"] == "nul_character"
    assert error["error"].startswith("name must not contain NUL")
    assert ApiKey.objects.count() == 1


def test_an_escaped_backslash_before_u0000_is_plain_text(api):
    response = api.post("/customer/keys", raw='{"name": "ops\\\\u0000key"}')

    assert response.status_code == 201, response.content
    assert response.json()["name"] == "ops\\u0000key"


@pytest.mark.parametrize("who", ["anonymous", "tenant's key"])
@pytest.mark.parametrize("method, path, query, named", [
    ("DELETE", "/customer/keys/{key_id}%00", None, "The URL path"),
    ("GET", "/customer/decisions/abc%00", None, "The URL path"),
    ("GET", "/customer/decisions", {"month": "2026-01\u0000"}, "Query parameter 'month'"),
    ("GET", "/customer/decisions", {"x\u0000": "1"}, "A query parameter name"),
])
def test_nul_in_the_url_is_a_400_before_anything_else(tenant, who, method, path, query, named):
    api = ApiClient(tenant.plaintext if who == "tenant's key" else None)

    error = assert_json_error(api.request(method, path.format(key_id=tenant.key.key_id), query=query), 400)

    assert error["code"] == "nul_character"
    assert error["error"].startswith(named)
    assert ApiKey.objects.filter(revoked_at__isnull=True).count() == 1


def test_nul_in_a_header_is_a_400_naming_it(api):
    error = assert_json_error(api.post("/evaluate", EXAMPLE_A, headers={"Idempotency-Key": "retry\u00001"}), 400)

    assert error["error"].startswith("Header Idempotency-Key must not contain NUL")
    assert_nothing_stored()


@pytest.mark.parametrize("path", ["/decisions/", "/telemetry/"])
def test_nul_in_a_page_search_is_a_400(staff_client, path):
    response = staff_client.get(path, {"q": "pay\u0000", "actor": "a\u0000"}, secure=True)

    assert assert_json_error(response, 400)["code"] == "nul_character"


def test_nul_in_a_form_field_is_a_400_naming_it():
    response = Client().post("/accounts/login/", {"username": "root\u0000", "password": "x"}, secure=True)

    error = assert_json_error(response, 400)
    assert error["error"].startswith("Form field 'username' must not contain NUL")


# --- body size ----------------------------------------------------------------------------

def test_the_default_body_limit_holds_both_drift_arrays_full_at_full_precision(api, settings):
    """100,000 values in each array, each as long as a float's JSON text gets."""
    values = [float(MAX_FLOAT_REPR)] * 50_000 + [float("-2.2250738585072014e-300")] * 50_000
    body = json.dumps({**EXAMPLE_A, "proposal_summary": "\U0001F600" * 10_000, "drift_baseline_data": values,
                       "drift_current_data": values}, ensure_ascii=True)
    assert len(body) > 2 * 100_000 * len(MAX_FLOAT_REPR)
    assert settings.AEGIS_MAX_BODY_BYTES == 8 * 1024 * 1024

    response = api.post("/evaluate", raw=body)

    assert response.status_code == 200, response.content[:500]
    assert response.json()["drift"]["status"] == "normal"


@pytest.mark.parametrize("who", ["anonymous", "tenant's key"])
@pytest.mark.parametrize("path", ["/evaluate", "/sandbox/evaluate", "/api/workflows/proposals", "/accounts/login/"])
def test_a_body_declared_over_the_limit_is_a_413_before_anyone_reads_it(tenant, who, path):
    """The test client sends a few bytes and claims 200 MB: only Content-Length is looked at."""
    api = ApiClient(tenant.plaintext if who == "tenant's key" else None)

    response = api.post(path, EXAMPLE_A, CONTENT_LENGTH=str(200 * 1024 * 1024))

    error = assert_json_error(response, 413)
    assert error["code"] == "payload_too_large"
    assert error["error"] == "The request body of 209,715,200 bytes is over the limit of 8,388,608 bytes"
    assert_nothing_stored()
    assert SandboxUsage.objects.count() == 0


def test_a_chunked_body_is_a_411_instead_of_being_read_as_empty(anon):
    response = anon.post("/sandbox/evaluate", EXAMPLE_A, HTTP_TRANSFER_ENCODING="chunked")

    error = assert_json_error(response, 411)
    assert error["code"] == "length_required"
    assert "Content-Length" in error["error"]
    assert SandboxUsage.objects.count() == 0


def test_the_body_limit_is_a_setting_and_counts_bytes(api, settings):
    body = json.dumps(EXAMPLE_A).encode()
    settings.AEGIS_MAX_BODY_BYTES = len(body)
    assert api.post("/evaluate", raw=body).status_code == 200

    error = assert_json_error(api.post("/evaluate", raw=body + b" "), 413)

    assert f"over the limit of {len(body):,} bytes" in error["error"]
    assert Decision.objects.count() == 1


def test_the_parser_reads_no_more_than_the_limit_whatever_the_stream_holds(settings):
    settings.AEGIS_MAX_BODY_BYTES = 1000
    stream = io.BytesIO(b"[" + b"1," * 5000 + b"1]")

    with pytest.raises(ApiError) as refused:
        JSONBodyParser().parse(stream)

    assert (refused.value.status_code, refused.value.code) == (413, "payload_too_large")
    assert stream.tell() == 1001


def test_too_many_query_parameters_is_a_400_naming_the_limit(api):
    error = assert_json_error(api.get("/customer/decisions", query={f"p{i}": "1" for i in range(1001)}), 400)

    assert error["code"] == "too_many_fields"
    assert "DATA_UPLOAD_MAX_NUMBER_FIELDS" in error["error"]


# --- months -------------------------------------------------------------------------------

BAD_MONTHS = ["0000-01", "2026-12\n", "2026-13", "2026-00", "26-01", "2026-1", " 2026-01", "2026-01 ",
              "\u0662\u0660\u0662\u0666-01", "2026_01"]


@pytest.mark.parametrize("month", BAD_MONTHS)
def test_a_bad_month_filter_is_a_400_naming_month(api, month):
    error = assert_json_error(api.get("/customer/decisions", query={"month": month}), 400)

    assert error["error"].startswith("month must be YYYY-MM")
    assert repr(month) in error["error"]


@pytest.mark.parametrize("month", BAD_MONTHS)
def test_a_bad_usage_month_is_a_400_naming_month(api, month):
    from urllib.parse import quote

    error = assert_json_error(api.get(f"/customer/usage/{quote(month, safe='')}"), 400)

    assert error["error"].startswith("month must be YYYY-MM")


@pytest.mark.parametrize("month", ["0001-01", "2026-12", "9999-12"])
def test_months_from_year_1_to_9999_are_answered(api, month):
    listed = api.get("/customer/decisions", query={"month": month})
    usage = api.get(f"/customer/usage/{month}")

    assert (listed.status_code, listed.json()) == (200, {"decisions": []})
    assert (usage.status_code, usage.json()["month"]) == (200, month)
