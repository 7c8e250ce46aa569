"""governance.json_limits: the strict JSON reader behind every JSON body, the `aegis` command
line and drift baseline uploads, and the display of stored JSON of any depth."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from governance.drift import DriftError, parse_baseline_file
from governance.fields import decode_value, encode_value
from governance.json_limits import TOO_DEEP_TO_SHOW, JsonInputError, display_json, loads_strict

AEGIS = Path(sys.executable).with_name("aegis")


def depth_of(value) -> int:
    """Levels of arrays and objects, computed plainly (iteratively) to check the scanner."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def random_json(rng: random.Random, depth: int):
    if depth == 0 or rng.random() < 0.2:
        return rng.choice([1, 2.5, None, True, "a]b", '{"[', "\\", ""])
    if rng.random() < 0.5:
        return [random_json(rng, depth - 1) for _ in range(rng.randint(0, 3))]
    return {f"k{i}[": random_json(rng, depth - 1) for i in range(rng.randint(0, 3))}


def test_the_depth_scan_agrees_with_the_parsed_value_on_random_documents():
    rng = random.Random(20261202)
    for _ in range(2000):
        value = random_json(rng, rng.randint(0, 12))
        text = json.dumps(value, separators=rng.choice([(",", ":"), (", ", ": ")]))
        depth = depth_of(value)
        for limit in (max(depth - 1, 1), max(depth, 1)):
            if depth > limit:
                with pytest.raises(JsonInputError) as refused:
                    loads_strict(text, max_depth=limit)
                assert refused.value.code == "json_too_deep"
            else:
                assert loads_strict(text, max_depth=limit) == value


def test_mixed_nesting_counts_every_level():
    assert loads_strict('{"a":[{"b":[]}]}', max_depth=4) == {"a": [{"b": []}]}
    with pytest.raises(JsonInputError):
        loads_strict('{"a":[{"b":[]}]}', max_depth=3)


def test_nesting_too_deep_for_the_json_module_is_refused_cleanly():
    with pytest.raises(JsonInputError) as refused:
        loads_strict("[" * 200_000 + "]" * 200_000)

    assert refused.value.code == "json_too_deep"
    assert "at most 32 levels" in refused.value.message


def test_nan_and_infinity_stay_floats_for_validation_to_name():
    value = loads_strict('{"a": NaN, "b": -Infinity}')

    assert value["a"] != value["a"] and value["b"] == float("-inf")


def test_malformed_json_is_still_a_value_error():
    with pytest.raises(ValueError, match="Expecting"):
        loads_strict('{"a": ')


def test_a_long_duplicate_key_is_named_shortened():
    key = "k" * 500
    with pytest.raises(JsonInputError) as refused:
        loads_strict(json.dumps({key: 1})[:-1] + f', "{key}": 2}}')

    assert refused.value.code == "duplicate_key"
    assert len(refused.value.message) < 200


def test_display_json_elides_levels_below_its_depth_and_keeps_the_rest():
    value = {"top": "kept", "list": [1, [2, [3, [4]]]]}

    shown = json.loads(display_json(value, max_depth=3))

    assert shown == {"list": [1, [2, TOO_DEEP_TO_SHOW]], "top": "kept"}
    assert json.loads(display_json(value)) == value


def call_in_deep_stack(frames: int, function):
    """function() with `frames` more Python frames below it, like a view deep in Django."""
    return function() if frames == 0 else call_in_deep_stack(frames - 1, function)


def test_deep_stored_json_encrypts_and_decrypts_in_a_deep_call_stack():
    """Fernet-stored JSON is encoded and decoded wherever the ORM runs, e.g. inside the admin,
    whose call stack leaves the json module too little room for 890 levels."""
    deep: object = "bottom"
    for _ in range(890):
        deep = {"level": deep}

    decoded = call_in_deep_stack(300, lambda: decode_value(call_in_deep_stack(0, lambda: encode_value(deep, "json"))))
    again = call_in_deep_stack(300, lambda: encode_value(decoded, "json"))

    assert depth_of(decoded) == 890
    assert again == encode_value(deep, "json")


def test_a_deep_json_baseline_upload_is_refused_naming_the_file():
    with pytest.raises(DriftError, match=r"^deep\.json: JSON nested too deeply"):
        parse_baseline_file(b"[" * 5000 + b"]" * 5000, "deep.json")


@pytest.mark.parametrize("text, message", [
    ('{"proposal_summary": "x", "a": ' + "[" * 3000 + "]" * 3000 + "}", "JSON nested too deeply"),
    ('{"proposal_summary": "x", "estimated_impact": "low", "estimated_impact": "critical"}',
     'Duplicate key "estimated_impact"'),
    ('{"proposal_summary": "x\\u0000"}', "proposal_summary must not contain NUL"),
])
def test_the_command_line_refuses_the_same_input_with_exit_3(tmp_path, text, message):
    path = tmp_path / "proposal.json"
    path.write_text(text)

    result = subprocess.run([str(AEGIS), "evaluate", "--input", str(path)], capture_output=True, text=True,
                            timeout=60)

    assert result.returncode == 3, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
