"""`aegis_preflight --prometheus-rules FILE`: a deployment's alert rules that read a metric
this version does not export (renamed or removed) block the upgrade, each one named."""

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db

SHIPPED_RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "aegis-rules.yml"


def preflight(tmp_path, rules: Path) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("aegis_preflight", backup=str(tmp_path / "pre-upgrade.json.gz"),
                     prometheus_rules=str(rules), stdout=out, stderr=StringIO())
    except CommandError as error:
        return error.returncode, out.getvalue()
    return 0, out.getvalue()


def rules_file(tmp_path, *rules: str) -> Path:
    path = tmp_path / "rules.yml"
    path.write_text("groups:\n  - name: deployment\n    rules:\n" + "".join(rules), encoding="utf-8")
    return path


def test_the_shipped_rules_pass(tmp_path):
    code, out = preflight(tmp_path, SHIPPED_RULES)
    assert code == 0, out
    assert f"[OK  ] Prometheus rules {SHIPPED_RULES}: 11 rule(s), 0 metric(s) this version does not export" in out
    assert "Preflight passed" in out


def test_a_renamed_metric_is_named_with_its_rule_and_the_new_name(tmp_path):
    rules = rules_file(
        tmp_path,
        "      - alert: DecisionsStopped\n        expr: sum(rate(aegis_decision_total[10m])) == 0\n",
        "      - alert: BackupsFailing\n        expr: increase(aegis_backups_total{result=\"failed\"}[1d]) > 0\n")
    code, out = preflight(tmp_path, rules)
    assert code == 1
    assert ("rule DecisionsStopped uses metric aegis_decision_total, which this version does not export "
            "(renamed? this version has aegis_decisions_total)") in out
    assert "BackupsFailing uses" not in out
    assert f"[FAIL] Prometheus rules {rules}: 2 rule(s), 1 metric(s) this version does not export" in out
    assert "Upgrade blocked by 1 problem(s):" in out


def test_a_removed_metric_is_reported_without_a_guess(tmp_path):
    rules = rules_file(tmp_path, "      - alert: Queue\n        expr: flower_events_total > 0\n")
    code, out = preflight(tmp_path, rules)
    assert code == 1
    assert "rule Queue uses metric flower_events_total, which this version does not export (removed or renamed)" in out


def test_a_recording_rule_and_prometheus_own_series_count_as_known(tmp_path):
    rules = rules_file(
        tmp_path,
        "      - record: aegis:decisions:rate5m\n        expr: sum by (status) (rate(aegis_decisions_total[5m]))\n",
        "      - alert: NoDecisions\n        expr: aegis:decisions:rate5m == 0 and on () up{job=\"aegis\"} == 1\n")
    code, out = preflight(tmp_path, rules)
    assert code == 0, out


@pytest.mark.parametrize("content, message", [
    ("groups: [unclosed", "is not YAML"),
    ("rules: []\n", "expected a Prometheus rules file, a mapping with a list under 'groups'"),
    ("groups:\n  - name: g\n    rules:\n      - expr: up\n", "every rule needs 'alert' or 'record', and 'expr'"),
    ("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: sum(rate(x[5m])\n",
     "rule A: '(' is never closed"),
])
def test_a_file_that_is_not_a_rules_file_fails_with_a_clear_message(tmp_path, content, message):
    path = tmp_path / "rules.yml"
    path.write_text(content, encoding="utf-8")
    code, out = preflight(tmp_path, path)
    assert code == 1
    assert "[FAIL] Prometheus rules" in out and message in out


def test_a_missing_file_fails_naming_it(tmp_path):
    code, out = preflight(tmp_path, tmp_path / "nowhere.yml")
    assert code == 1
    assert f"[FAIL] Prometheus rules {tmp_path / 'nowhere.yml'} could not be read" in out
