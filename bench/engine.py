"""Engine benchmark: `.venv/bin/python bench/engine.py`.

Measures, single-threaded, the median of several runs of
  - scalar pcw_decide on a realistic mix of proposals (and parse + decide + to_dict),
  - evaluate_batch on 1,000,000 proposals,
  - DriftMonitor.check on 1,000,000 current values against 1,000,000 baseline values,
and prints them against the targets (scalar ≥ 50,000 decisions/s, batch ≤ 1 s).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from governance.engine import (  # noqa: E402
    AegisConfig,
    DriftMonitor,
    evaluate_batch,
    parse_proposal,
    pcw_decide,
)

SCALAR_PROPOSALS = 20_000
BATCH_ROWS = 1_000_000
DRIFT_VALUES = 1_000_000
RUNS = 7


def proposal_mix(rng: np.random.Generator, n: int) -> list[dict]:
    """Request bodies resembling real traffic: mostly benign, some risky, novel or complex;
    a third carry a utility estimate, a few are high impact or irreversible."""
    bodies = []
    for _ in range(n):
        baseline_risk = float(rng.uniform(0.01, 0.2))
        body = {
            "proposal_summary": "Add Redis caching layer to reduce API latency",
            "estimated_impact": str(rng.choice(["low", "medium", "high", "critical"], p=[0.3, 0.5, 0.15, 0.05])),
            "risk_baseline": baseline_risk,
            "risk_proposed": float(min(1.0, baseline_risk * rng.lognormal(0.3, 0.5))),
            "profit_baseline": float(rng.uniform(0.5, 2.0)),
            "profit_proposed": float(rng.uniform(0.3, 2.0)),
            "novelty_score": float(rng.beta(4, 4)),
            "complexity_score": float(rng.beta(5, 2)),
            "quality_score": float(rng.beta(6, 2)),
            "quality_subscores": [float(s) for s in rng.beta(6, 2, 3)],
            "reversible": bool(rng.random() > 0.05),
            "time_sensitive": bool(rng.random() < 0.1),
        }
        if rng.random() < 1 / 3:
            body["utility_result"] = {"mean": float(rng.normal(0.08, 0.05)),
                                      "std_error": float(rng.uniform(0.0, 0.05))}
        bodies.append(body)
    return bodies


def batch_columns(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    risk_baseline = rng.uniform(0.01, 0.2, n)
    utility_mean = rng.normal(0.08, 0.05, n)
    utility_mean[rng.random(n) < 2 / 3] = np.nan
    return {
        "risk_baseline": risk_baseline,
        "risk_proposed": np.minimum(1.0, risk_baseline * rng.lognormal(0.3, 0.5, n)),
        "profit_baseline": rng.uniform(0.5, 2.0, n),
        "profit_proposed": rng.uniform(0.3, 2.0, n),
        "novelty_score": rng.beta(4, 4, n),
        "complexity_score": rng.beta(5, 2, n),
        "quality_score": rng.beta(6, 2, n),
        "has_zero_subscore": rng.random(n) < 0.01,
        "impact": rng.choice(np.arange(4, dtype=np.int8), n, p=[0.3, 0.5, 0.15, 0.05]),
        "requires_human_approval": rng.random(n) < 0.05,
        "utility_mean": utility_mean,
        "utility_std_error": rng.uniform(0.0, 0.05, n),
    }


def median_seconds(action: Callable[[], object], runs: int = RUNS) -> float:
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def main() -> None:
    config = AegisConfig.default()
    rng = np.random.default_rng(2026)

    bodies = proposal_mix(rng, SCALAR_PROPOSALS)
    proposals = [parse_proposal(body) for body in bodies]

    def decide_all() -> None:
        for proposal in proposals:
            pcw_decide(proposal, config)

    def parse_decide_serialise_all() -> None:
        for body in bodies:
            pcw_decide(parse_proposal(body), config).to_dict()

    decide_all()  # warm the caches
    scalar_rate = SCALAR_PROPOSALS / median_seconds(decide_all)
    full_rate = SCALAR_PROPOSALS / median_seconds(parse_decide_serialise_all, runs=3)

    columns = batch_columns(rng, BATCH_ROWS)
    evaluate_batch(columns, config)
    batch_seconds = median_seconds(lambda: evaluate_batch(columns, config), runs=5)

    monitor = DriftMonitor.from_config(rng.normal(0.0, 1.0, DRIFT_VALUES), config)
    current = rng.normal(0.05, 1.1, DRIFT_VALUES)
    drift_seconds = median_seconds(lambda: monitor.check(current), runs=5)

    rows = [
        ("pcw_decide (parsed proposals)", f"{scalar_rate:,.0f} decisions/s", "≥ 50,000 /s",
         scalar_rate >= 50_000),
        ("parse_proposal + pcw_decide + to_dict", f"{full_rate:,.0f} decisions/s", "", None),
        (f"evaluate_batch, {BATCH_ROWS:,} rows", f"{batch_seconds * 1000:,.0f} ms", "≤ 1,000 ms",
         batch_seconds <= 1.0),
        (f"DriftMonitor.check, {DRIFT_VALUES:,} values", f"{drift_seconds * 1000:,.0f} ms", "< 1,000 ms",
         drift_seconds < 1.0),
    ]
    print(f"AEGIS engine benchmark (Python {sys.version.split()[0]}, numpy {np.__version__}, "
          f"single thread, median of runs)")
    print(f"{'measurement':<42} {'result':>22} {'target':>13}  ok")
    print("-" * 84)
    for name, result, target, ok in rows:
        verdict = "" if ok is None else ("yes" if ok else "NO")
        print(f"{name:<42} {result:>22} {target:>13}  {verdict}")


if __name__ == "__main__":
    main()
