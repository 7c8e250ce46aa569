"""The shipped alert rules and dashboard name only metrics and labels that /metrics exports.

A live server does real work (decisions of three statuses through /evaluate, an override,
an attestation, a calibration, a drift report, a backup and a chain verification); its
/metrics is scraped, and every expression in deploy/prometheus/aegis-rules.yml and
deploy/grafana/aegis-dashboard.json is read by governance.monitoring (the same reading
`aegis_preflight --prometheus-rules` does) and checked against what was scraped."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
from django.utils import timezone

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "drift"))  # test_drift_support
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "attestations"))  # client_attest_support
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))  # its api_support

from client_attest_support import attest_arguments  # noqa: E402
from test_drift_support import RISK, RISK_2, make_decisions, normal_grid  # noqa: E402

from attestations import keys  # noqa: E402
from calibration import services as calibration  # noqa: E402
from governance import drift, monitoring, services  # noqa: E402
from governance.models import Tier  # noqa: E402
from workflows.operations import run_scheduled_backup, verify_all_chains  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "aegis-rules.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "aegis-dashboard.json"
PROCEED = {"proposal_summary": "Add Redis caching layer to reduce API latency", "estimated_impact": "medium",
           "risk_baseline": 0.02, "risk_proposed": 0.05, "profit_baseline": 0.98, "profit_proposed": 0.98,
           "novelty_score": 0.75, "complexity_score": 0.8, "quality_score": 0.85}


def dashboard_queries(dashboard: dict) -> list[tuple[str, str]]:
    """(panel title, expr) of every query of every panel, rows' nested panels included."""
    queries = []
    for panel in dashboard["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            queries += [(f"panel {inner['title']!r}", target["expr"]) for target in inner.get("targets", [])]
    return queries


def scrape_after_real_work(server, backup_dir, settings) -> monitoring.Exported:
    """What /metrics of the live server exports after real work of every kind."""
    settings.BACKUP_DIR = backup_dir
    keys.generate_pair()
    customer, _, key = services.create_customer("Acme Payments", tier=Tier.objects.get_or_create(
        name="team", defaults={"display_name": "Team", "monthly_evaluations": 10_000, "rate_per_minute": 600,
                               "max_keys": 5})[0])

    def post(path: str, body: dict, expected: int) -> dict:
        response = httpx.post(f"{server.url}{path}", json=body, headers={"Authorization": f"Bearer {key}"},
                              timeout=30)
        assert response.status_code == expected, response.text
        return response.json()

    answers = [post("/evaluate", body, 200) for body in (
        PROCEED, {**PROCEED, "estimated_impact": "high"}, {**PROCEED, "novelty_score": 0.9})]
    assert [answer["status"] for answer in answers] == ["proceed", "pause", "halt"]
    halted = answers[2]["decision_id"]
    post(f"/api/decisions/{halted}/override", {"justification": "Revenue-critical launch; rollback plan in PR 42"}, 201)
    post("/attest", attest_arguments(decision_id=halted), 201)
    proposal = calibration.propose("novelty_threshold", 0.9, "Too many false halts on novelty", actor=RISK)
    calibration.approve(proposal.proposal_id, actor=RISK_2, comment="ok")
    yesterday = timezone.now().date() - timedelta(days=1)
    drift.set_baseline(customer, normal_grid(0.05, 0.01, 200).tolist(), actor=RISK, source="test")
    make_decisions(customer, np.clip(normal_grid(0.08, 0.01, 40), 0, 1), yesterday)
    report, message = drift.run_drift_report(customer, yesterday)
    assert report is not None, message
    assert run_scheduled_backup(timezone.now().date()).outcome == "succeeded"
    assert verify_all_chains().broken == 0
    response = httpx.get(f"{server.url}/metrics", timeout=30)
    assert response.status_code == 200
    return monitoring.exported_in(response.text)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_rules_and_dashboard_use_only_exported_metrics_and_labels(plain_http_live_server, tmp_path, settings):
    exported = scrape_after_real_work(plain_http_live_server, tmp_path, settings)
    rules = [(f"rule {rule.name}", rule.expr) for rule in monitoring.read_rules(RULES.read_text(), str(RULES))]
    panels = dashboard_queries(json.loads(DASHBOARD.read_text()))
    assert len(rules) == 11 and len(panels) >= 15

    unknown = [str(found) for where, expr in rules + panels
               for found in monitoring.unknown_names(where, expr, exported)]

    assert unknown == []
    # The same check on the same scrape does report what is not there.
    assert [str(found) for found in monitoring.unknown_names(
        "rule R", 'sum by (gates) (rate(aegis_decision_total{tenant="acme"}[5m]))', exported)] == [
        "rule R uses metric aegis_decision_total, which this version does not export "
        "(renamed? this version has aegis_decisions_total)",
        "rule R uses label 'gates' of the metrics it reads, which this version does not export (removed or renamed)"]
