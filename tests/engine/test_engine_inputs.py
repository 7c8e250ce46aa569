"""parse_proposal: strict validation that names the field (ENGINE.md §1)."""

import datetime
import math
import uuid

import pytest

from governance.engine import InputError, ProposalInput, UtilityResult, parse_proposal

SUMMARY = {"proposal_summary": "Add caching"}


def problems_of(data, **kwargs):
    with pytest.raises(InputError) as caught:
        parse_proposal(data, **kwargs)
    return caught.value


def test_minimal_input_takes_every_default():
    proposal = parse_proposal(SUMMARY)
    expected = ProposalInput("Add caching", session_id=proposal.session_id)
    assert proposal == expected
    assert proposal.agent_id == "aegis-cli" and proposal.phase == "plan"
    assert proposal.estimated_impact == "medium" and proposal.change_type is None
    assert (proposal.novelty_score, proposal.complexity_score, proposal.quality_score) == (0.5, 0.5, 0.7)
    assert proposal.quality_subscores == (0.7, 0.7, 0.7)
    assert proposal.reversible is True and proposal.metadata == {}
    assert uuid.UUID(proposal.session_id).version == 4
    assert parse_proposal(SUMMARY).session_id != proposal.session_id


def test_full_valid_input():
    data = {
        "proposal_summary": "  Trim me  ", "estimated_impact": "critical", "agent_id": "a" * 200,
        "session_id": "s-1", "phase": "commit", "change_type": "bugfix", "risk_baseline": 0,
        "risk_proposed": 1, "profit_baseline": 3.5, "profit_proposed": 0.0, "novelty_score": 0.1,
        "complexity_score": 1.0, "quality_score": 0.0, "quality_subscores": [0, 1, 0.5] * 6 + [1, 1],
        "utility_result": {"mean": -2, "std_error": 0}, "requires_human_approval": True,
        "time_sensitive": True, "reversible": False, "shadow_mode": True,
        "drift_baseline_data": list(range(30)), "drift_current_data": [], "metadata": {"k": [1, "x"]},
    }
    proposal = parse_proposal(data)
    assert proposal.proposal_summary == "Trim me"
    assert proposal.risk_proposed == 1.0 and isinstance(proposal.risk_proposed, float)
    assert len(proposal.quality_subscores) == 20
    assert proposal.utility_result == UtilityResult(-2.0, 0.0)
    assert proposal.drift_baseline_data == tuple(float(i) for i in range(30))
    assert proposal.drift_current_data == ()
    assert proposal.metadata == {"k": [1, "x"]}


def test_absent_optional_fields_accept_null():
    proposal = parse_proposal(SUMMARY | {"change_type": None, "utility_result": None,
                                         "drift_baseline_data": None, "drift_current_data": None})
    assert proposal.change_type is None and proposal.utility_result is None


@pytest.mark.parametrize("field, value, words", [
    # out of range
    ("risk_proposed", 1.5, "in [0, 1]"), ("risk_baseline", -0.01, "in [0, 1]"),
    ("novelty_score", 1.0001, "in [0, 1]"), ("complexity_score", -1, "in [0, 1]"),
    ("quality_score", 2, "in [0, 1]"), ("profit_baseline", -0.5, "≥ 0"),
    ("profit_proposed", -1e-9, "≥ 0"),
    # NaN and infinity
    ("risk_proposed", math.nan, "finite"), ("profit_baseline", math.inf, "finite"),
    ("quality_score", -math.inf, "finite"),
    # bool where a number is expected
    ("risk_proposed", True, "boolean"), ("profit_proposed", False, "boolean"),
    # strings, nulls and containers where a number is expected
    ("novelty_score", "0.5", "string"), ("complexity_score", None, "null"),
    ("quality_score", [0.5], "array"), ("risk_baseline", {"v": 1}, "object"),
    ("profit_baseline", 10 ** 400, "too large"), ("risk_proposed", datetime.date(2026, 1, 1), "type date"),
    # enums, flags, strings
    ("estimated_impact", "HIGH", "low, medium, high, critical"),
    ("estimated_impact", None, "low, medium, high, critical"),
    ("change_type", "hotfix", "feature, refactor, bugfix, config"),
    ("requires_human_approval", 1, "true or false"), ("shadow_mode", "true", "true or false"),
    ("reversible", None, "true or false"), ("time_sensitive", 0, "true or false"),
    ("agent_id", "a" * 201, "at most 200"), ("session_id", 42, "string"),
    ("phase", "p" * 51, "at most 50"),
    # lists
    ("quality_subscores", [0.5] * 21, "0–20 items"), ("quality_subscores", 0.5, "array"),
    ("quality_subscores", [0.5, 1.2], "quality_subscores[1]"),
    ("quality_subscores", [0.5, True], "quality_subscores[1]"),
    ("quality_subscores", [math.nan], "quality_subscores[0] must be a finite"),
    ("drift_baseline_data", list(range(29)), "30–100,000 items"),
    ("drift_baseline_data", [0.0] * 100_001, "30–100,000 items"),
    ("drift_current_data", [0.0] * 100_001, "0–100,000 items"),
    ("drift_current_data", [1.0, "2"], "drift_current_data[1]"),
    ("drift_baseline_data", [1.0] * 40 + [math.inf], "drift_baseline_data[40] must be a finite"),
    ("drift_current_data", {"a": 1}, "array"),
    ("drift_current_data", [1.0, 10 ** 400], "too large"),
    # objects
    ("utility_result", [0.1, 0.05], "object"),
    ("utility_result", {"mean": 0.1}, "missing std_error"),
    ("utility_result", {"mean": 0.1, "std_error": -0.01}, "utility_result.std_error"),
    ("utility_result", {"mean": math.nan, "std_error": 0.1}, "utility_result.mean"),
    ("utility_result", {"mean": True, "std_error": 0.1}, "utility_result.mean"),
    ("utility_result", {"mean": 0.1, "std_error": 0.1, "n": 5}, "unknown key(s) n"),
    ("metadata", [1, 2], "JSON object"), ("metadata", "x", "JSON object"),
    ("metadata", {"big": "x" * 16_384}, "at most 16,384 bytes"),
    ("metadata", {"v": math.nan}, "JSON values"), ("metadata", {"v": object()}, "JSON values"),
    ("metadata", {1: "x"}, "keys must be strings"),
])
def test_bad_values_are_rejected_naming_the_field(field, value, words):
    error = problems_of(SUMMARY | {field: value})
    assert error.kind == "invalid"
    assert error.fields == [field]
    message = error.problems[0][1]
    assert message.startswith(field) and words in message
    assert field in str(error)


def test_metadata_limit_is_on_the_serialised_utf8_size():
    fits = {"k": "x" * (16_384 - len('{"k":""}'))}
    assert parse_proposal(SUMMARY | {"metadata": fits}).metadata == fits
    assert problems_of(SUMMARY | {"metadata": {"k": fits["k"] + "x"}}).fields == ["metadata"]
    two_byte = {"k": "é" * 8200}  # 16,400 bytes in UTF-8
    assert problems_of(SUMMARY | {"metadata": two_byte}).fields == ["metadata"]


@pytest.mark.parametrize("summary, words", [
    ("", "must not be empty"), ("   \n\t", "must not be empty"),
    ("x" * 10_001, "at most 10,000 characters"), (123, "string"), (None, "string"),
])
def test_bad_summary(summary, words):
    error = problems_of({"proposal_summary": summary})
    assert error.fields == ["proposal_summary"] and words in error.problems[0][1]


def test_summary_limit_applies_after_trimming():
    assert len(parse_proposal({"proposal_summary": "  " + "x" * 10_000 + "  "}).proposal_summary) == 10_000


def test_missing_summary_is_required():
    error = problems_of({"risk_proposed": 0.1})
    assert error.problems == [("proposal_summary", "proposal_summary is required")]


def test_unknown_fields_are_a_separate_kind():
    error = problems_of(SUMMARY | {"foo": 1, "bar": 2})
    assert error.kind == "unknown_field"
    assert error.unknown_fields == ("foo", "bar")
    assert str(error) == "Unknown field(s): foo, bar"
    assert error.fields == ["foo", "bar"]


def test_every_problem_is_reported_at_once():
    error = problems_of({"risk_proposed": 2, "novelty_score": "x", "extra": 1})
    assert sorted(error.fields) == ["extra", "novelty_score", "proposal_summary", "risk_proposed"]
    assert error.kind == "unknown_field"


def test_body_must_be_an_object():
    error = problems_of(["proposal_summary"])
    assert error.fields == ["body"] and "JSON object" in str(error)


def test_aliases_only_with_allow_aliases():
    data = SUMMARY | {"risk": 0.4, "risk_base": 0.1, "profit": 1.0, "profit_base": 2.0,
                      "novelty": 0.2, "complexity": 0.9, "quality": 0.8}
    proposal = parse_proposal(data, allow_aliases=True)
    assert (proposal.risk_proposed, proposal.risk_baseline, proposal.profit_proposed,
            proposal.profit_baseline, proposal.novelty_score, proposal.complexity_score,
            proposal.quality_score) == (0.4, 0.1, 1.0, 2.0, 0.2, 0.9, 0.8)
    error = problems_of(data)
    assert error.kind == "unknown_field"
    assert set(error.unknown_fields) == {"risk", "risk_base", "profit", "profit_base", "novelty",
                                         "complexity", "quality"}


def test_alias_and_canonical_name_together_is_an_error_naming_both():
    error = problems_of(SUMMARY | {"risk": 0.4, "risk_proposed": 0.3}, allow_aliases=True)
    assert error.kind == "invalid"
    message = error.problems[0][1]
    assert "risk" in message and "risk_proposed" in message


def test_alias_value_errors_name_the_key_as_given():
    error = problems_of(SUMMARY | {"novelty": 3}, allow_aliases=True)
    assert error.fields == ["novelty"] and error.problems[0][1].startswith("novelty must be in [0, 1]")


def test_parsed_proposal_is_immutable():
    proposal = parse_proposal(SUMMARY)
    with pytest.raises(AttributeError):
        proposal.risk_proposed = 0.9
