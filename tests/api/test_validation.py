"""Strict input validation on /evaluate (ENGINE.md §1): a bad value is a 400 whose message
names the field, an unknown field a 422 `Unknown field(s): a, b`; nothing is clipped, and
a rejected request leaves no trace (no decision, no usage, no idempotency record)."""

from __future__ import annotations

import json

import pytest
from api_support import EXAMPLE_A, assert_json_error

from governance.models import Decision, IdempotencyRecord, UsageCounter

pytestmark = pytest.mark.django_db

# case id -> (changes to example A; None as a value removes the field, field the error must name)
BAD_INPUTS = {
    "risk_proposed above 1": ({"risk_proposed": 1.5}, "risk_proposed"),
    "risk_baseline below 0": ({"risk_baseline": -0.01}, "risk_baseline"),
    "novelty above 1": ({"novelty_score": 1.0001}, "novelty_score"),
    "quality below 0": ({"quality_score": -1}, "quality_score"),
    "negative profit": ({"profit_baseline": -0.5}, "profit_baseline"),
    "string for a number": ({"complexity_score": "0.8"}, "complexity_score"),
    "bool true for a number": ({"risk_proposed": True}, "risk_proposed"),
    "bool false for a number": ({"novelty_score": False}, "novelty_score"),
    "null for a number": ({"quality_score": None, "_keep_null": True}, "quality_score"),
    "object for a number": ({"profit_proposed": {"value": 1}}, "profit_proposed"),
    "empty summary": ({"proposal_summary": ""}, "proposal_summary"),
    "blank summary": ({"proposal_summary": "   \n\t "}, "proposal_summary"),
    "missing summary": ({"proposal_summary": None}, "proposal_summary"),
    "summary not a string": ({"proposal_summary": 42}, "proposal_summary"),
    "summary over 10,000 chars": ({"proposal_summary": "x" * 10_001}, "proposal_summary"),
    "unknown impact": ({"estimated_impact": "huge"}, "estimated_impact"),
    "impact in capitals": ({"estimated_impact": "HIGH"}, "estimated_impact"),
    "impact not a string": ({"estimated_impact": 3}, "estimated_impact"),
    "21 quality subscores": ({"quality_subscores": [0.8] * 21}, "quality_subscores"),
    "subscore above 1": ({"quality_subscores": [0.8, 1.2]}, "quality_subscores"),
    "subscore a string": ({"quality_subscores": [0.8, "0.9"]}, "quality_subscores"),
    "subscores not a list": ({"quality_subscores": 0.8}, "quality_subscores"),
    "metadata over 16 KiB": ({"metadata": {"blob": "x" * (16 * 1024)}}, "metadata"),
    "metadata not an object": ({"metadata": ["a"]}, "metadata"),
    "agent_id over 200 chars": ({"agent_id": "a" * 201}, "agent_id"),
    "session_id not a string": ({"session_id": 7}, "session_id"),
    "phase over 50 chars": ({"phase": "p" * 51}, "phase"),
    "unknown change_type": ({"change_type": "rewrite"}, "change_type"),
    "flag as string": ({"shadow_mode": "true"}, "shadow_mode"),
    "flag as number": ({"requires_human_approval": 1}, "requires_human_approval"),
    "negative std_error": ({"utility_result": {"mean": 0.1, "std_error": -0.01}}, "std_error"),
    "utility not an object": ({"utility_result": 0.1}, "utility_result"),
    "drift baseline too short": ({"drift_baseline_data": [0.1] * 29}, "drift_baseline_data"),
    "drift sample with a string": ({"drift_baseline_data": [0.1] * 30,
                                    "drift_current_data": [0.1, "x"]}, "drift_current_data"),
}


def body_with(changes: dict) -> dict:
    changes = dict(changes)
    keep_null = changes.pop("_keep_null", False)
    body = {**EXAMPLE_A, **changes}
    return body if keep_null else {k: v for k, v in body.items() if v is not None}


def assert_nothing_stored():
    assert Decision.objects.count() == 0
    assert UsageCounter.objects.count() == 0
    assert IdempotencyRecord.objects.count() == 0


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_a_400_naming_the_field_and_stores_nothing(api, case):
    changes, field = BAD_INPUTS[case]

    response = api.post("/evaluate", body_with(changes), headers={"Idempotency-Key": f"bad-{case}"})

    body = assert_json_error(response, 400)
    assert field in body["error"], body["error"]
    assert_nothing_stored()


@pytest.mark.parametrize(("field", "literal"), [
    ("risk_proposed", "NaN"),
    ("novelty_score", "Infinity"),
    ("quality_score", "-Infinity"),
    ("profit_proposed", "Infinity"),
])
def test_nan_and_infinity_are_a_400_naming_the_field(api, field, literal):
    text = json.dumps({k: v for k, v in EXAMPLE_A.items() if k != field})[:-1] + f', "{field}": {literal}}}'

    response = api.post("/evaluate", raw=text)

    body = assert_json_error(response, 400)
    assert field in body["error"], body["error"]
    assert_nothing_stored()


def test_nan_inside_a_list_names_the_list(api):
    text = json.dumps(EXAMPLE_A)[:-1] + ', "quality_subscores": [0.8, NaN]}'

    body = assert_json_error(api.post("/evaluate", raw=text), 400)

    assert "quality_subscores" in body["error"]
    assert_nothing_stored()


def test_every_bad_field_is_named_at_once(api):
    body = assert_json_error(api.post("/evaluate", {**EXAMPLE_A, "risk_proposed": 2, "novelty_score": "x"}), 400)

    assert "risk_proposed" in body["error"] and "novelty_score" in body["error"]


@pytest.mark.parametrize("changes", [
    {"proposal_summary": "  " + "x" * 10_000 + "  "},  # 10,000 after trimming
    {"proposal_summary": "x"},
    {"quality_subscores": [0.8] * 20},
    {"quality_subscores": []},
    {"metadata": {"blob": "x" * (16 * 1024 - len('{"blob":""}'))}},  # exactly 16 KiB as JSON
    {"risk_baseline": 0, "risk_proposed": 1, "novelty_score": 0.0, "quality_score": 1},
    {"profit_baseline": 2.5, "profit_proposed": 3},  # Sharpe ratios may exceed 1
    {"agent_id": "a" * 200, "session_id": "s" * 200, "phase": "p" * 50, "change_type": "bugfix"},
    {"change_type": None},
    {"utility_result": {"mean": 0.1, "std_error": 0}},
], ids=["summary-10000-after-trim", "summary-1-char", "20-subscores", "0-subscores", "metadata-16KiB",
        "range-ends", "profit-above-1", "text-limits", "null-change-type", "zero-std-error"])
def test_values_at_the_limits_are_accepted(api, changes):
    response = api.post("/evaluate", {**EXAMPLE_A, **changes})

    assert response.status_code == 200, response.content
    assert Decision.objects.count() == 1


def test_a_summary_is_stored_trimmed(api):
    decision_id = api.post("/evaluate", {**EXAMPLE_A, "proposal_summary": "  padded  "}).json()["decision_id"]

    assert Decision.objects.get(decision_id=decision_id).proposal_summary == "padded"


def test_drift_samples_of_100000_values_are_accepted(api):
    """About 4 MB of JSON: more than Django's default upload limit for form data."""
    baseline = [i / 100_000 for i in range(100_000)]
    current = [(i % 1000) / 1000 for i in range(100_000)]

    response = api.post("/evaluate", {**EXAMPLE_A, "drift_baseline_data": baseline, "drift_current_data": current})

    assert response.status_code == 200, response.content
    assert response.json()["drift"]["status"] in {"normal", "warning", "critical"}


@pytest.mark.parametrize("field", ["drift_baseline_data", "drift_current_data"])
def test_drift_samples_over_100000_values_are_a_400(api, field):
    body = {**EXAMPLE_A, "drift_baseline_data": [0.5] * 30, field: [0.5] * 100_001}

    error = assert_json_error(api.post("/evaluate", body), 400)

    assert field in error["error"]
    assert_nothing_stored()


@pytest.mark.parametrize("literal", ["NaN", "Infinity"])
def test_nan_risk_score_on_risk_check_is_a_400_naming_it(api, literal):
    body = assert_json_error(api.post("/risk-check", raw=f'{{"risk_score": {literal}, "threshold": 0.3}}'), 400)

    assert "risk_score" in body["error"]
    assert UsageCounter.objects.count() == 0


@pytest.mark.parametrize(("extra", "message"), [
    ({"a": 1}, "Unknown field(s): a"),
    ({"a": 1, "b": "x"}, "Unknown field(s): a, b"),
    ({"a": 1, "b": 2, "risk_proposed": 7}, "Unknown field(s): a, b"),  # unknown wins over invalid
])
def test_unknown_fields_are_a_422_listing_them(api, extra, message):
    response = api.post("/evaluate", {**EXAMPLE_A, **extra}, headers={"Idempotency-Key": "unknown-fields"})

    body = assert_json_error(response, 422)
    assert body["error"] == message
    assert_nothing_stored()


@pytest.mark.parametrize("path", ["/sandbox/evaluate", "/risk-check", "/customer/keys"])
def test_unknown_fields_are_a_422_on_the_other_posts_too(api, path):
    known = {"/sandbox/evaluate": EXAMPLE_A, "/risk-check": {"risk_score": 0.1},
             "/customer/keys": {"name": "ci"}}[path]

    body = assert_json_error(api.post(path, {**known, "a": 1, "b": 2}), 422)

    assert body["error"] == "Unknown field(s): a, b"


@pytest.mark.parametrize("raw", [
    b'{"proposal_summary": "x"',
    b"{'proposal_summary': 'x'}",
    b'{"proposal_summary": "x",}',
    b"not json",
    b'{"proposal_summary": "\xff\xfe"}',
], ids=["truncated", "single-quotes", "trailing-comma", "plain-text", "not-utf8"])
def test_malformed_json_is_a_400(api, raw):
    response = api.post("/evaluate", raw=raw, headers={"Idempotency-Key": "malformed"})

    assert_json_error(response, 400)
    assert_nothing_stored()


@pytest.mark.parametrize("raw", ["[]", json.dumps([EXAMPLE_A]), '"a string"', "42", "null", "true"])
@pytest.mark.parametrize("path", ["/evaluate", "/sandbox/evaluate"])
def test_a_body_that_is_not_a_json_object_is_a_400(api, path, raw):
    response = api.post(path, raw=raw, headers={"Idempotency-Key": "not-an-object"})

    assert_json_error(response, 400)
    assert_nothing_stored()


def test_an_empty_body_is_a_400_for_the_missing_summary(api):
    body = assert_json_error(api.post("/evaluate", raw=""), 400)

    assert "proposal_summary" in body["error"]


def test_a_rejected_request_leaves_its_idempotency_key_free(api):
    key = {"Idempotency-Key": "first-try-was-bad"}
    assert_json_error(api.post("/evaluate", {**EXAMPLE_A, "risk_proposed": 9}, headers=key), 400)

    response = api.post("/evaluate", EXAMPLE_A, headers=key)

    assert response.status_code == 200, response.content
    assert Decision.objects.count() == 1
