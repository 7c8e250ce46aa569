"""The shipped alert rules pass `promtool check rules`, and their unit tests
(deploy/prometheus/aegis-rules.test.yml: every alert firing and not firing) pass
`promtool test rules`. CI installs promtool (Debian package `prometheus`, .ci/run)."""

import shutil
import subprocess
from pathlib import Path

import yaml

RULES_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def promtool(*args: str) -> str:
    """Not skipped without promtool: CI installs it, and a missing one must not pass silently."""
    binary = shutil.which("promtool")
    assert binary, "promtool is not installed (Debian: apt-get install prometheus)"
    done = subprocess.run([binary, *args], cwd=RULES_DIR, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"promtool {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def test_promtool_check_rules():
    assert "SUCCESS: 11 rules found" in promtool("check", "rules", "aegis-rules.yml")


def test_promtool_test_rules():
    assert "SUCCESS" in promtool("test", "rules", "aegis-rules.test.yml")


def test_every_alert_has_a_unit_test_that_fires_it_and_one_that_does_not():
    alerts = {rule["alert"] for group in yaml.safe_load((RULES_DIR / "aegis-rules.yml").read_text())["groups"]
              for rule in group["rules"]}
    tests = yaml.safe_load((RULES_DIR / "aegis-rules.test.yml").read_text())["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    fired = {case["alertname"] for case in cases if case.get("exp_alerts")}
    silent = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    assert alerts == fired == silent


def test_every_alert_has_severity_summary_runbook_and_for():
    for group in yaml.safe_load((RULES_DIR / "aegis-rules.yml").read_text())["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
            assert rule["annotations"]["summary"], rule["alert"]
            assert rule["annotations"]["runbook"].startswith("docs/operations.md#alert-"), rule["alert"]
            assert rule["for"], rule["alert"]
