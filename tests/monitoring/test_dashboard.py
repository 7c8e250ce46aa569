"""deploy/grafana/aegis-dashboard.json is a Grafana dashboard (schema 39) on a Prometheus
datasource variable, has the panels issue 15 lists, and every query is valid PromQL
(`promtool check rules` on the queries, Grafana's interval variable given a value)."""

import json
import shutil
import subprocess
from pathlib import Path

import yaml

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "aegis-dashboard.json"


def load() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def panels(dashboard: dict) -> list[dict]:
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def test_a_dashboard_on_a_prometheus_datasource_variable():
    dashboard = load()
    assert dashboard["schemaVersion"] == 39 and dashboard["uid"] and dashboard["title"] == "AEGIS"
    [variable] = dashboard["templating"]["list"]
    assert (variable["type"], variable["query"], variable["name"]) == ("datasource", "prometheus", "datasource")
    for panel in panels(dashboard):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert all(target["datasource"] == panel["datasource"] for target in panel["targets"]), panel["title"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_the_panels_the_issue_lists():
    queries = {panel["title"]: " ".join(target["expr"] for target in panel["targets"]) for panel in panels(load())}
    wanted = {"Decisions by status": "aegis_decisions_total", "Gate failures": 'result="fail"',
              "Decision latency quantiles": "histogram_quantile(0.99",
              "Drift KL divergence per tenant, with its thresholds": 'level="critical"',
              "Calibration proposal steps": "aegis_calibration_proposals_total",
              "Override and review activity": "aegis_workflow_transitions_total",
              "Since the last successful backup": "aegis_backup_last_success_timestamp_seconds",
              "Broken chains in the newest verification": "aegis_audit_verification_broken_chains"}
    for title, part in wanted.items():
        assert part in queries[title], title
    assert 'level="warning"' in queries["Drift KL divergence per tenant, with its thresholds"]


def test_every_query_is_valid_promql(tmp_path):
    binary = shutil.which("promtool")
    assert binary, "promtool is not installed (Debian: apt-get install prometheus)"
    rules = [{"record": f"dashboard:query{number}", "expr": target["expr"].replace("$__rate_interval", "5m")}
             for number, target in enumerate((target for panel in panels(load()) for target in panel["targets"]), 1)]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8")
    done = subprocess.run([binary, "check", "rules", str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
