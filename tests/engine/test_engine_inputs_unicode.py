"""parse_proposal refuses text that is not valid Unicode (a lone surrogate, which JSON
allows as "\\ud800" but nothing can encode as UTF-8), wherever it is: a top-level string
field, any string or object key nested in metadata / utility_result, or a field name.
Each problem names its field, like every other invalid value (kind "invalid": a 400).
Pure Python: no database, no Django."""

import json

import pytest

from governance.engine import InputError, parse_proposal

SUMMARY = {"proposal_summary": "Add caching"}
MESSAGE = "must be valid Unicode text (no unpaired surrogates)"


def problems_of(data, **kwargs) -> InputError:
    with pytest.raises(InputError) as caught:
        parse_proposal(data, **kwargs)
    return caught.value


def from_json(text: str) -> dict:
    """As the API's parser sees a body: JSON escapes decode to lone surrogates."""
    return json.loads(text)


@pytest.mark.parametrize("field", ["proposal_summary", "agent_id", "session_id", "phase"])
@pytest.mark.parametrize("text", ["x\ud800y", "\udfff", "\udc00\ud83d", "  \ud800  "])
def test_a_top_level_string_with_a_lone_surrogate_is_invalid_naming_the_field(field, text):
    error = problems_of({**SUMMARY, field: text})

    assert error.kind == InputError.INVALID
    assert error.fields == [field]
    assert error.problems[0][1].startswith(f"{field} {MESSAGE}")
    str(error).encode("utf-8")  # the message itself is always encodable (the value is escaped)


@pytest.mark.parametrize(("metadata", "where"), [
    ({"note": "x\ud800y"}, 'metadata["note"] must be'),
    ({"x\ud800y": 1}, "metadata has a key that is not valid Unicode text"),
    ({"a": [1, {"b": ["ok", "\udfff"]}]}, 'metadata["a"][1]["b"][1] must be'),
    ({"a": {"b": [{"\ud800": None}]}}, 'metadata["a"]["b"][0] has a key'),
    ({"tags": ("fine", "\ud800")}, 'metadata["tags"][1] must be'),
])
def test_a_lone_surrogate_anywhere_in_metadata_is_invalid_naming_where(metadata, where):
    error = problems_of({**SUMMARY, "metadata": metadata})

    assert error.fields == ["metadata"]
    assert str(error).startswith(where), str(error)
    str(error).encode("utf-8")


def test_a_lone_surrogate_in_a_utility_result_key_is_invalid():
    error = problems_of({**SUMMARY, "utility_result": {"mean": 0.1, "std_error": 0.0, "\ud800": 1}})

    assert error.fields == ["utility_result"] and "valid Unicode text" in str(error)
    str(error).encode("utf-8")


def test_a_lone_surrogate_in_a_choice_is_invalid_with_an_encodable_message():
    error = problems_of({**SUMMARY, "estimated_impact": "high\ud800"})

    assert error.fields == ["estimated_impact"]
    str(error).encode("utf-8")


def test_a_field_name_with_a_lone_surrogate_is_invalid_not_echoed_raw():
    error = problems_of({**SUMMARY, "risk\ud800": 0.1})

    assert error.kind == InputError.INVALID
    assert error.fields == ["body"]
    assert "field name" in str(error) and "valid Unicode text" in str(error)
    str(error).encode("utf-8")


def test_with_aliases_a_field_name_with_a_lone_surrogate_is_invalid_too():
    error = problems_of({**SUMMARY, "novelty\udfff": 0.1}, allow_aliases=True)

    assert error.fields == ["body"]


def test_every_bad_text_is_reported_at_once_with_the_other_problems():
    error = problems_of({**SUMMARY, "agent_id": "\ud800", "session_id": "ok", "metadata": {"k": "\udfff"},
                         "risk_proposed": 2})

    assert sorted(error.fields) == ["agent_id", "metadata", "risk_proposed"]


def test_a_json_body_with_surrogate_escapes_is_refused():
    raw = '{"proposal_summary": "x\\ud800y", "metadata": {"a": "\\udfff"}}'

    error = problems_of(from_json(raw))

    assert sorted(error.fields) == ["metadata", "proposal_summary"]


def test_a_paired_surrogate_escape_is_ordinary_text():
    raw = '{"proposal_summary": "ship \\ud83d\\ude00", "agent_id": "\\ud83d\\ude00", "metadata": {"\\ud83d\\ude00": ["é"]}}'

    proposal = parse_proposal(from_json(raw))

    assert proposal.proposal_summary == "ship \U0001F600"
    assert proposal.agent_id == "\U0001F600"
    assert proposal.metadata == {"\U0001F600": ["é"]}


def test_valid_non_ascii_text_is_accepted_everywhere():
    proposal = parse_proposal({"proposal_summary": "Ünïcödé ✓ 中文", "agent_id": "агент", "session_id": "s-ß",
                               "phase": "plan", "metadata": {"ключ": {"nested": ["значение", 1, None, True]}}})

    assert proposal.agent_id == "агент" and proposal.metadata["ключ"]["nested"][0] == "значение"


def test_deeply_nested_metadata_does_not_exhaust_the_recursion_limit():
    deep: object = "\ud800"
    for _ in range(5000):
        deep = [deep]

    error = problems_of({**SUMMARY, "metadata": {"deep": deep}})

    assert error.fields == ["metadata"]
    assert len(str(error)) < 400  # the path shown is shortened


def test_large_numeric_samples_are_still_accepted():
    proposal = parse_proposal({**SUMMARY, "drift_baseline_data": [0.1] * 100_000,
                               "drift_current_data": [0.2] * 100_000})

    assert len(proposal.drift_baseline_data) == 100_000
