"""Text that is not valid Unicode on /evaluate: JSON allows escapes such as "\\ud800" that
decode to a lone (unpaired) surrogate, which cannot be encoded as UTF-8 and so cannot be
stored (encrypted PII columns), hashed or answered. Such a string, anywhere in the body
(a top-level field, a value or key nested in metadata, a field name), is a 400 naming
the field, like any other invalid value (tests/api/test_validation.py), and leaves no
trace. A correctly paired surrogate escape (an emoji) is ordinary text."""

from __future__ import annotations

import json

import pytest
from api_support import EXAMPLE_A, assert_json_error

from governance.models import Decision, IdempotencyRecord, UsageCounter

pytestmark = pytest.mark.django_db

LONE_HIGH = "\\ud800"  # the six characters of the JSON escape, not the code point
LONE_LOW = "\\udfff"


def body_text(**raw_members: str) -> str:
    """Example A as JSON text, with each keyword's value replaced by (or added as) the given
    raw JSON text. Built by hand: json.dumps never writes an unpaired surrogate escape
    for our own values, and the point is to send one."""
    base = {key: value for key, value in EXAMPLE_A.items() if key not in raw_members}
    members = "".join(f', "{name}": {text}' for name, text in raw_members.items())
    return json.dumps(base)[:-1] + members + "}"


def assert_nothing_stored():
    assert Decision.objects.count() == 0
    assert UsageCounter.objects.count() == 0
    assert IdempotencyRecord.objects.count() == 0


def test_the_body_really_holds_a_lone_surrogate():
    decoded = json.loads(body_text(proposal_summary=f'"x{LONE_HIGH}y"'))

    assert decoded["proposal_summary"] == "x\ud800y"
    with pytest.raises(UnicodeEncodeError):
        decoded["proposal_summary"].encode("utf-8")


# case id -> (raw JSON members, the field the error must name)
LONE_SURROGATES = {
    "proposal_summary": ({"proposal_summary": f'"x{LONE_HIGH}y"'}, "proposal_summary"),
    "proposal_summary low surrogate": ({"proposal_summary": f'"{LONE_LOW} tail"'}, "proposal_summary"),
    "proposal_summary reversed pair": ({"proposal_summary": f'"{LONE_LOW}{LONE_HIGH}"'}, "proposal_summary"),
    "agent_id": ({"agent_id": f'"agent-{LONE_HIGH}"'}, "agent_id"),
    "session_id": ({"session_id": f'"{LONE_HIGH}"'}, "session_id"),
    "phase": ({"phase": f'"plan{LONE_LOW}"'}, "phase"),
    "metadata value": ({"metadata": f'{{"note": "x{LONE_HIGH}y"}}'}, "metadata"),
    "metadata key": ({"metadata": f'{{"x{LONE_HIGH}y": 1}}'}, "metadata"),
    "metadata value nested deep": ({"metadata": f'{{"a": [1, {{"b": ["ok", "{LONE_LOW}"]}}]}}'}, "metadata"),
    "metadata key nested deep": ({"metadata": f'{{"a": {{"b": [{{"{LONE_HIGH}": null}}]}}}}'}, "metadata"),
    "utility_result key": ({"utility_result": f'{{"mean": 0.1, "std_error": 0.0, "{LONE_HIGH}": 1}}'},
                           "utility_result"),
}


@pytest.mark.parametrize("case", LONE_SURROGATES)
def test_a_lone_surrogate_is_a_400_naming_the_field_and_stores_nothing(api, case):
    members, field = LONE_SURROGATES[case]

    response = api.post("/evaluate", raw=body_text(**members), headers={"Idempotency-Key": f"surrogate-{case}"})

    body = assert_json_error(response, 400)
    assert body["code"] == "invalid_request"
    assert field in body["error"], body["error"]
    assert "valid Unicode text (no unpaired surrogates)" in body["error"], body["error"]
    assert_nothing_stored()


def test_the_nested_path_is_named(api):
    body = assert_json_error(api.post("/evaluate", raw=body_text(metadata=f'{{"a": [1, {{"b": "{LONE_HIGH}"}}]}}')),
                             400)

    assert body["error"].startswith('metadata["a"][1]["b"] must be valid Unicode text'), body["error"]


def test_every_field_with_a_lone_surrogate_is_named_at_once(api):
    text = body_text(agent_id=f'"{LONE_HIGH}"', session_id=f'"{LONE_LOW}"', metadata=f'{{"k": "{LONE_HIGH}"}}')

    body = assert_json_error(api.post("/evaluate", raw=text), 400)

    assert all(field in body["error"] for field in ("agent_id", "session_id", "metadata")), body["error"]
    assert_nothing_stored()


def test_a_field_name_with_a_lone_surrogate_is_a_400(api):
    body = assert_json_error(api.post("/evaluate", raw=body_text(**{f"x{LONE_HIGH}": "1"})), 400)

    assert "field name" in body["error"] and "valid Unicode text" in body["error"], body["error"]
    assert_nothing_stored()


def test_the_sandbox_refuses_a_lone_surrogate_too(anon):
    body = assert_json_error(anon.post("/sandbox/evaluate", raw=body_text(proposal_summary=f'"{LONE_HIGH}"')), 400)

    assert "proposal_summary" in body["error"]


def test_a_rejected_surrogate_leaves_the_idempotency_key_free(api):
    key = {"Idempotency-Key": "surrogate-then-fixed"}
    assert_json_error(api.post("/evaluate", raw=body_text(agent_id=f'"{LONE_HIGH}"'), headers=key), 400)

    response = api.post("/evaluate", {**EXAMPLE_A, "agent_id": "fixed"}, headers=key)

    assert response.status_code == 200, response.content
    assert Decision.objects.count() == 1


def test_a_paired_surrogate_escape_is_ordinary_text(api):
    """"\\ud83d\\ude00" is one character (an emoji): accepted, stored and read back."""
    emoji = "\\ud83d\\ude00"
    text = body_text(proposal_summary=f'"ship it {emoji}"', agent_id=f'"{emoji}"',
                     metadata=f'{{"{emoji}": ["{emoji}"]}}')

    response = api.post("/evaluate", raw=text)

    assert response.status_code == 200, response.content
    decision = Decision.objects.get(decision_id=response.json()["decision_id"])
    assert decision.proposal_summary == "ship it \U0001F600"
    assert decision.agent_id == "\U0001F600"
    assert decision.metadata == {"\U0001F600": ["\U0001F600"]}
