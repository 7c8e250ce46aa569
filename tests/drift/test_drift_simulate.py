"""scripts/simulate_drift.py against the test database: it ends with exactly one pending
calibration proposal from `drift-monitor`, and running it again adds nothing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from append_only_support import wipe_decisions
from calibration.versions import active_version_number
from governance.models import Customer, Decision, DriftBaseline, DriftReport
from test_drift_support import *  # noqa: F401,F403
from test_drift_support import drift_proposals, open_drift_proposals

pytestmark = pytest.mark.django_db

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "simulate_drift.py"
ARGS = ["--days", "8", "--per-day", "30", "--seed", "3"]  # shifted from day index 4 on


@pytest.fixture(scope="module")
def simulate():
    spec = importlib.util.spec_from_file_location("simulate_drift", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_simulation_ends_with_one_pending_drift_monitor_proposal(simulate, capsys):
    version = active_version_number()

    result = simulate.main(ARGS)

    output = capsys.readouterr().out
    customer = Customer.objects.get(name="Drift demo")
    assert result["customer"] == customer
    reports = list(DriftReport.objects.filter(customer=customer).order_by("day"))
    assert len(reports) == 8 and reports == result["reports"]
    assert Decision.objects.filter(customer=customer).count() == 240
    assert DriftBaseline.objects.filter(customer=customer).count() == 1
    # Before the shift (day index 4) normal; after it the drift becomes sustained.
    assert [r.status for r in reports[:4]] == ["normal"] * 4
    assert all(r.status in ("warning", "critical") for r in reports[-3:])

    proposal = open_drift_proposals().get()
    assert drift_proposals().count() == 1
    assert result["proposal"] == proposal
    assert proposal.workflow.current_state == "proposed" and proposal.parameter == "tau_warning"
    assert active_version_number() == version  # nothing applied without a human
    assert str(proposal.proposal_id) in output and f"/calibration/{proposal.proposal_id}/" in output
    assert f"tau_warning 0.3 -> {proposal.proposed_value:g}" in output
    for report in reports:
        assert report.day.isoformat() in output

    # Running it again reuses the tenant, its baseline and its reports: nothing is added.
    simulate.main(ARGS)
    assert Customer.objects.filter(name="Drift demo").count() == 1
    assert Decision.objects.filter(customer=customer).count() == 240
    assert DriftReport.objects.filter(customer=customer).count() == 8
    assert open_drift_proposals().count() == 1 and drift_proposals().count() == 1


def test_simulation_is_reproducible_for_a_seed(simulate, capsys):
    short = ["--days", "3", "--per-day", "30", "--seed", "5", "--shift-day", "1"]
    simulate.main(short)
    first = list(DriftReport.objects.order_by("day").values_list("kl_divergence", flat=True))
    assert len(first) == 3
    wipe_decisions()  # the append-only triggers lifted
    DriftReport.objects.all().delete()
    simulate.main(short)
    second = list(DriftReport.objects.order_by("day").values_list("kl_divergence", flat=True))
    assert first == second
