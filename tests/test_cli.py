"""The `aegis` console script, run as users run it: a subprocess of the installed entry point."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from governance import __version__
from governance.engine.contract import DEFAULT_CONTRACT_PATH

FIXTURES = Path(__file__).parent / "fixtures" / "schema"
AEGIS = Path(sys.executable).with_name("aegis")


def run_aegis(*args):
    result = subprocess.run([str(AEGIS), *map(str, args)], capture_output=True, text=True, timeout=60)
    assert "Traceback" not in result.stderr
    return result


def test_validate_the_shipped_contract_lists_all_22_parameters():
    result = run_aegis("validate-config", DEFAULT_CONTRACT_PATH)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["valid"] is True
    assert len(out["parameters"]) == 22
    assert out["parameters"]["tau_warning"] == 0.3


def test_invalid_tau_order_exits_1_naming_both(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("parameters:\n  kl_drift: {tau_warning: 0.6, tau_critical: 0.5}\n")
    result = run_aegis("validate-config", path)
    assert result.returncode == 1
    out = json.loads(result.stdout)
    assert out["valid"] is False
    assert {(e["parameter"], e["path"]) for e in out["errors"]} == {
        ("tau_warning", "kl_drift.tau_warning"), ("tau_critical", "kl_drift.tau_critical")}


def test_invalid_value_reports_parameter_path_and_message(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("parameters:\n  novelty_gate: {k: -3}\n  epsilon_R: .nan\n")
    out = json.loads(run_aegis("validate-config", path).stdout)
    assert {e["parameter"]: e["path"] for e in out["errors"]} == {"novelty_k": "novelty_gate.k",
                                                                   "epsilon_R": "epsilon_R"}
    assert all(e["message"] for e in out["errors"])


def test_unknown_keys_are_valid_with_a_warning(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("parameters:\n  epsilon_R: 0.02\n  mystery: 1\n")
    result = run_aegis("validate-config", path)
    assert result.returncode == 0
    out = json.loads(result.stdout)
    assert out["parameters"]["epsilon_R"] == 0.02
    assert any("mystery" in w for w in out["warnings"])
    assert "mystery" in result.stderr


@pytest.mark.parametrize("content, words", [
    (None, "file not found"),
    ("parameters: [\n", "not valid YAML at line 2"),
    ("- a\n- b\n", "expected a YAML mapping"),
    (b"\xff\xfe\x00bad", "cannot read file"),
])
def test_unreadable_or_broken_file_exits_3_with_a_message(tmp_path, content, words):
    path = tmp_path / "config.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    result = run_aegis("validate-config", path)
    assert result.returncode == 3
    assert result.stdout == ""
    assert words in result.stderr and str(path) in result.stderr


@pytest.mark.parametrize("new, category, code", [
    ("base.yaml", None, 0),
    ("new_parameter.yaml", "new_parameter", 0),
    ("default_change.yaml", "default_change", 1),
    ("removal.yaml", "removal", 2),
    ("rename.yaml", "rename", 2),
])
def test_schema_diff_classifies_each_change_category(new, category, code):
    result = run_aegis("schema-diff", FIXTURES / "base.yaml", FIXTURES / new)
    assert result.returncode == code, result.stdout + result.stderr
    out = json.loads(result.stdout)
    assert [c["category"] for c in out["changes"]] == ([category] if category else [])
    assert out["compatibility"] == ["compatible", "review", "breaking"][code]


def test_schema_diff_details_of_a_rename_and_a_default_change():
    rename = json.loads(run_aegis("schema-diff", FIXTURES / "base.yaml", FIXTURES / "rename.yaml").stdout)
    assert (rename["changes"][0]["old_path"], rename["changes"][0]["parameter"]) == (
        "future_gate.window", "future_gate.window_days")
    assert rename["changes"][0]["action"] == "Update custom config"
    change = json.loads(run_aegis("schema-diff", FIXTURES / "base.yaml", FIXTURES / "default_change.yaml").stdout)
    assert (change["changes"][0]["old_default"], change["changes"][0]["new_default"]) == (0.01, 0.02)
    assert (change["old_version"], change["new_version"]) == ("2.0.0", "2.1.0")


def test_schema_diff_of_the_shipped_contract_with_itself_is_compatible():
    result = run_aegis("schema-diff", DEFAULT_CONTRACT_PATH, DEFAULT_CONTRACT_PATH)
    assert result.returncode == 0 and json.loads(result.stdout)["changes"] == []


def test_schema_diff_missing_file_exits_3(tmp_path):
    result = run_aegis("schema-diff", FIXTURES / "base.yaml", tmp_path / "absent.yaml")
    assert result.returncode == 3 and "file not found" in result.stderr


def test_migrate_config_rewrites_a_renamed_key_and_drops_a_removed_one(tmp_path):
    config = tmp_path / "mine.yaml"
    config.write_text("parameters:\n  epsilon_R: 0.03\n  future_gate:\n    window: 21\n    retired: 5\n")
    result = run_aegis("migrate-config", config, "--schema", FIXTURES / "rename.yaml")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert {(c["action"], c["parameter"]) for c in out["changes"]} == {
        ("renamed", "future_gate.window"), ("removed", "future_gate.retired")}
    assert yaml.safe_load(config.read_text()) == {
        "parameters": {"epsilon_R": 0.03, "future_gate": {"window_days": 21}}}
    assert "window: 21" in (tmp_path / "mine.yaml.bak").read_text()
    assert "renamed: future_gate.window -> future_gate.window_days" in result.stderr


def test_migrate_config_with_the_shipped_aliases_gives_a_valid_config(tmp_path):
    config = tmp_path / "old.yaml"
    config.write_text("parameters:\n  novelty_gate:\n    threshold: 0.75\n")
    out_path = tmp_path / "new.yaml"
    result = run_aegis("migrate-config", config, "--schema", DEFAULT_CONTRACT_PATH, "--output", out_path)
    assert result.returncode == 0
    validated = json.loads(run_aegis("validate-config", out_path).stdout)
    assert validated["valid"] and validated["parameters"]["novelty_threshold"] == 0.75
    assert validated["warnings"] == []


def test_version_reports_app_schema_and_python():
    out = json.loads(run_aegis("version").stdout)
    assert out["schema"] == "1.1.1"
    assert out["aegis"] == __version__
    assert out["python"].startswith("3.11")


EXAMPLE_A = {"proposal_summary": "Deploy v2", "risk_base": 0.02, "risk": 0.05, "profit_base": 0.98,
             "profit": 0.98, "novelty": 0.75, "complexity": 0.8, "quality": 0.85}


def run_evaluate(payload, *args, tmp_path=None):
    text = payload if isinstance(payload, str) else json.dumps(payload)
    result = subprocess.run([str(AEGIS), "evaluate", *map(str, args)], input=text, capture_output=True,
                            text=True, timeout=60)
    assert "Traceback" not in result.stderr
    return result


@pytest.mark.parametrize("changes, status, code", [
    ({}, "proceed", 0),
    ({"novelty": 0.9}, "halt", 1),
    ({"estimated_impact": "high", "risk": 0.08}, "escalate", 2),
    ({"estimated_impact": "critical"}, "pause", 2),
])
def test_evaluate_exit_code_follows_the_status(changes, status, code):
    result = run_evaluate({**EXAMPLE_A, **changes})
    assert result.returncode == code, result.stderr
    decision = json.loads(result.stdout)
    assert decision["status"] == status
    assert decision["config_version"] is None or isinstance(decision["config_version"], int)


def test_evaluate_reads_a_file_and_a_config(tmp_path):
    proposal = tmp_path / "p.json"
    proposal.write_text(json.dumps({**EXAMPLE_A, "novelty": 0.85}))
    config = tmp_path / "c.yaml"
    config.write_text("parameters:\n  novelty_gate:\n    output_threshold: 0.9\n")
    assert run_evaluate("", "--input", proposal).returncode == 1  # 0.8176 >= 0.8 fails by default
    relaxed = run_evaluate("", "--input", proposal, "--config", config)
    assert relaxed.returncode == 0 and json.loads(relaxed.stdout)["gates"]["novelty"]["threshold"] == 0.9


def test_evaluate_shadow_flag_is_reported():
    result = run_evaluate(EXAMPLE_A, "--shadow")
    assert json.loads(result.stdout)["shadow_mode"] is True


def test_evaluate_drift_baseline_without_current_sample_reports_insufficient_data(tmp_path):
    baseline = tmp_path / "baseline.txt"
    baseline.write_text("\n".join(str(0.01 * i) for i in range(40)))
    result = run_evaluate(EXAMPLE_A, "--drift-baseline", baseline)
    assert result.returncode == 0
    assert "drift" not in json.loads(result.stdout)
    assert "insufficient" in result.stderr.lower() or "not computed" in result.stderr.lower()


def test_evaluate_drift_with_current_sample_in_the_input(tmp_path):
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps([0.01 * (i % 10) for i in range(100)]))
    shifted = {**EXAMPLE_A, "drift_current_data": [0.5 + 0.01 * (i % 10) for i in range(100)]}
    result = run_evaluate(shifted, "--drift-baseline", baseline)
    decision = json.loads(result.stdout)
    assert decision["drift"]["status"] == "critical"
    assert decision["status"] == "pause" and result.returncode == 2


@pytest.mark.parametrize("payload, words", [
    ('{"proposal_summary": "x", "risk": NaN}', "input risk:"),
    ({"proposal_summary": "x", "risk": 1.5}, "input risk:"),
    ({"proposal_summary": "x", "risk": True}, "input risk:"),
    ({"proposal_summary": "x", "colour": "red"}, "input colour:"),
    ({"proposal_summary": "x", "risk": 0.1, "risk_proposed": 0.2}, "risk_proposed"),
    ({"risk": 0.1}, "input proposal_summary:"),
    ("{not json", "not valid JSON"),
    ("[1, 2]", "input body:"),
])
def test_evaluate_bad_input_exits_3_naming_the_field(payload, words):
    result = run_evaluate(payload)
    assert result.returncode == 3
    assert result.stdout == ""
    assert words in result.stderr


def test_evaluate_bad_config_and_bad_baseline_exit_3(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("parameters:\n  epsilon_R: -1\n")
    result = run_evaluate(EXAMPLE_A, "--config", config)
    assert result.returncode == 3 and "config epsilon_R" in result.stderr
    baseline = tmp_path / "b.txt"
    baseline.write_text("0.1 0.2 oops")
    result = run_evaluate(EXAMPLE_A, "--drift-baseline", baseline)
    assert result.returncode == 3 and "value 3 ('oops') is not a number" in result.stderr
    assert run_evaluate(EXAMPLE_A, "--input", tmp_path / "absent.json").returncode == 3
