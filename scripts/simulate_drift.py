"""Simulate drift for a demo tenant and let the drift monitor open a recalibration proposal.

Usage (from the project root; DEBUG=1 is set if absent, the database is DATABASE_URL or the
project's db.sqlite3 — run `manage.py migrate` first):

    .venv/bin/python scripts/simulate_drift.py [--days 14] [--per-day 40] [--seed 7]
                                               [--shift-day N] [--shift 0.04] [--baseline-size 500]
    DATABASE_URL=sqlite:////tmp/demo/db.sqlite3 .venv/bin/python scripts/simulate_drift.py --days 20

What it does, reproducibly for a given --seed:

1. Creates the tenant "Drift demo" (team tier) or reuses it. If it has no drift baseline,
   sets one of --baseline-size values of risk_proposed ~ N(0.05, 0.01) (clipped to [0, 1]).
2. Simulates --days days ending today. On each day, --per-day proposals are evaluated through
   the real engine path (`governance.services.evaluate_proposal`, as /evaluate does) with
   risk_proposed ~ N(0.05, 0.01) before --shift-day (a day index, default days // 2) and
   ~ N(0.05 + --shift, 0.01) from it on; their created_at is then set to times within that
   day. Then that day's drift report is run (`governance.drift.run_drift_report`, what the
   daily Celery task does for each tenant), over the last kl_window_days.
   A day that already has a report for the tenant is left as it is (re-running the script
   adds nothing twice).
3. Once kl_drift.sustained_days consecutive reports are warning or worse, the drift monitor
   opens ONE calibration proposal as the system actor `drift-monitor`, suggesting
   tau_warning / tau_critical from the 90th / 99th percentiles of the daily KL history.
   It is never applied by itself: a risk lead reviews it at /calibration/<proposal id>/.
4. Prints the daily reports and the pending drift-monitor proposal (id, proposed taus).

`main(argv)` does the work against the database Django is already configured for (the test
suite calls it that way) and returns {"customer", "reports", "proposal"}.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date, datetime, time, timedelta, timezone as dt_timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TENANT = "Drift demo"
BASELINE_MEAN, SD = 0.05, 0.01
ACTOR_NAME = "simulate-drift"


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aegis_site.settings")
    os.environ.setdefault("DEBUG", "1")
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import django

    django.setup()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=14, help="simulated days, ending today (default 14)")
    parser.add_argument("--per-day", type=int, default=40, help="decisions per simulated day (default 40)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument("--shift-day", type=int, default=None,
                        help="index of the first shifted day, 0-based (default: days // 2)")
    parser.add_argument("--shift", type=float, default=0.04,
                        help="upward shift of the mean risk_proposed from --shift-day on (default 0.04)")
    parser.add_argument("--baseline-size", type=int, default=500, help="baseline values (default 500)")
    options = parser.parse_args(argv)
    if options.days < 1 or options.per_day < 1 or options.baseline_size < 1:
        parser.error("--days, --per-day and --baseline-size must be at least 1")
    if options.shift_day is None:
        options.shift_day = options.days // 2
    return options


def _samples(rng, mean: float, n: int):
    import numpy as np

    return np.clip(rng.normal(mean, SD, n), 0.0, 1.0)


def _tenant():
    from governance.models import Customer, Tier
    from governance.services import create_customer

    customer = Customer.objects.filter(name=TENANT).order_by("pk").first()
    if customer is None:
        customer = create_customer(TENANT, tier=Tier.objects.get(name="team"))[0]
    return customer


def _simulate_day(customer, day: date, values, rng) -> None:
    """Evaluate one proposal per value, each at a moment within `day` (not after now):
    decisions are never changed once stored, so they are made at that time."""
    from django.db import transaction
    from django.utils import timezone

    from governance.engine.inputs import parse_proposal
    from governance.services import CallContext, evaluate_proposal

    ctx = CallContext(customer=customer, api_key=None, request_id="simulate-drift")
    start = datetime.combine(day, time.min, tzinfo=dt_timezone.utc)
    now = timezone.now()
    with transaction.atomic():
        for i, value in enumerate(values):
            created = min(start + timedelta(seconds=float(rng.uniform(0, 86399))), now)
            evaluate_proposal(ctx, parse_proposal({
                "proposal_summary": f"Simulated change {day.isoformat()} #{i + 1}",
                "agent_id": "drift-simulator", "risk_proposed": float(value)}), now=created)


def main(argv: list[str] | None = None, *, today: date | None = None) -> dict:
    import numpy as np
    from django.utils import timezone

    from calibration.models import CalibrationProposal
    from calibration.services import OPEN_STATES
    from calibration.versions import active_config
    from governance import drift
    from governance.models import DriftBaseline, DriftReport
    from workflows.machines import Actor

    options = parse_args(argv)
    today = today or timezone.now().date()
    customer = _tenant()
    version, config = active_config()
    print(f"Tenant {customer.name} ({customer.customer_id}); configuration v{version}: "
          f"tau_warning {config.tau_warning:g}, tau_critical {config.tau_critical:g}, "
          f"window {config.kl_window_days} days, sustained {config.drift_sustained_days} days")

    if not DriftBaseline.objects.filter(customer=customer).exists():
        values = _samples(np.random.default_rng([options.seed, 0]), BASELINE_MEAN, options.baseline_size)
        drift.set_baseline(customer, values.tolist(), actor=Actor(ACTOR_NAME),
                           source=f"simulated N({BASELINE_MEAN}, {SD}) seed {options.seed}")
        print(f"Baseline set: {options.baseline_size} values ~ N({BASELINE_MEAN}, {SD})")
    else:
        print("Baseline: the tenant's existing one")

    first = today - timedelta(days=options.days - 1)
    rows = []
    for index in range(options.days):
        day = first + timedelta(days=index)
        shifted = index >= options.shift_day
        mean = BASELINE_MEAN + (options.shift if shifted else 0.0)
        existing = DriftReport.objects.filter(customer=customer, day=day).first()
        if existing is None:
            rng = np.random.default_rng([options.seed, 1, index])
            _simulate_day(customer, day, _samples(rng, mean, options.per_day), rng)
        report, message = drift.run_drift_report(customer, day)
        rows.append((day, mean, report, message))

    print()
    print(f"{'day':<12} {'mean risk':>9} {'n current':>9} {'KL':>8}  status")
    for day, mean, report, message in rows:
        if report is None:
            print(f"{day.isoformat():<12} {mean:>9.3f} {'-':>9} {'-':>8}  no report: {message}")
        else:
            print(f"{day.isoformat():<12} {mean:>9.3f} {report.n_current:>9} {report.kl_divergence:>8.4f}  "
                  f"{report.status}")

    pending = [p for p in (CalibrationProposal.objects.filter(workflow__current_state__in=OPEN_STATES)
                           .select_related("workflow").order_by("created_at", "id"))
               if p.proposed_by == drift.DRIFT_MONITOR_ACTOR]  # encrypted column: matched in Python
    proposal = None
    print()
    for proposal in pending:
        taus = {proposal.parameter: proposal.proposed_value,
                **{name: change["to"] for name, change in proposal.companion_changes.items()}}
        print(f"Pending calibration proposal {proposal.proposal_id} from {proposal.proposed_by} "
              f"({proposal.workflow.current_state.upper()}): "
              + ", ".join(f"{name} {getattr(config, name):g} -> {value:g}" for name, value in sorted(taus.items())))
        print(f"  Review it as a risk lead at /calibration/{proposal.proposal_id}/ (queue: /calibration/).")
        print(f"  Justification: {proposal.justification}")
    if proposal is None:
        print("No pending drift-monitor proposal (drift was not sustained long enough).")
    return {"customer": customer, "reports": [report for _, _, report, _ in rows if report is not None],
            "proposal": proposal}


if __name__ == "__main__":
    setup_django()
    main()
