"""Stored decisions for the impact-preview tests (imported as `cal_decisions`): varied
proposals decided through `governance.services.evaluate_proposal`, and the scalar
re-evaluation (`pcw_decide`, one decision at a time) that the batch preview must equal."""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta
from typing import Any

from django.utils import timezone

from governance.engine import AegisConfig, ProposalInput, UtilityResult, parse_proposal, pcw_decide
from governance.models import Decision
from governance.services import CallContext, evaluate_proposal

# Each decision starts from a proposal that passes every gate (ENGINE.md example A) and
# gets one to three perturbations, so that every gate and rule is near its threshold
# somewhere. Cut-offs under the defaults: novelty 0.8386 (0.9197 at threshold 0.9),
# complexity 0.5, quality 0.7, risk/profit Δ ≈ 3.42, utility LCB > 0.
BASE: dict[str, Any] = {
    "estimated_impact": "medium", "risk_baseline": 0.02, "risk_proposed": 0.05,
    "profit_baseline": 0.98, "profit_proposed": 0.98, "novelty_score": 0.75,
    "complexity_score": 0.8, "quality_score": 0.85,
}
PERTURBATIONS: list[tuple[str, list[Any]]] = [
    ("novelty_score", [0.3, 0.5, 0.82, 0.85, 0.87, 0.9, 0.93, 0.97]),
    ("complexity_score", [0.3, 0.45, 0.5, 0.55, 0.58, 0.65]),
    ("quality_score", [0.6, 0.7, 0.75, 0.78, 0.95]),
    ("quality_subscores", [[0.7, 0.7, 0.7], [0.9, 0.0, 0.8], [], [0.0]]),
    ("estimated_impact", ["low", "high", "critical"]),
    ("risk", [(0.02, 0.08), (0.1, 0.3), (0.0, 0.0), (0.05, 0.16), (0.03, 0.1), (0.2, 0.1)]),
    ("profit", [(0.0, 0.0), (1.2, 0.4), (0.5, 0.2), (1.0, 0.3), (1.0, 1.1)]),
    ("utility_result", [{"mean": 0.1, "std_error": 0.05}, {"mean": 0.05, "std_error": 0.05},
                        {"mean": 0.2, "std_error": 0.0}, {"mean": -0.1, "std_error": 0.02},
                        {"mean": 0.08, "std_error": 0.03}, {"mean": 0.1, "std_error": 0.04}]),
    ("requires_human_approval", [True]),
    ("drift", [0.0, 0.4, 0.8, 1.0, 1.2, 1.5, 2.0, 3.0, "short"]),
    ("drift", [0.0, 0.4, 0.8, 1.0, 1.2, 1.5, 2.0, 3.0]),
]


def proposal_body(rng: random.Random, index: int) -> dict[str, Any]:
    body: dict[str, Any] = {"proposal_summary": f"Change #{index}", **BASE,
                            "time_sensitive": rng.random() < 0.2, "reversible": rng.random() < 0.8}
    for name, choices in rng.sample(PERTURBATIONS, rng.choice([1, 1, 2, 3])):
        value = rng.choice(choices)
        if name in ("risk", "profit"):
            body[f"{name}_baseline"], body[f"{name}_proposed"] = value
        elif name == "drift":
            body["drift_baseline_data"] = [round(rng.gauss(0.0, 1.0), 6) for _ in range(60)]
            size, mean = (10, 0.0) if value == "short" else (60, value)  # short: < kl_min_samples
            body["drift_current_data"] = [round(rng.gauss(mean, 1.0), 6) for _ in range(size)]
        else:
            body[name] = value
    return body


def make_decisions(customer, *, count: int = 200, shadow: int = 15, old: int = 15, seed: int = 7) -> dict[str, Any]:
    """`count` decisions in the window, plus `shadow` shadow ones and `old` ones older than
    kl_window_days (both must be left out of a preview)."""
    rng = random.Random(seed)
    ctx = CallContext(customer=customer, api_key=None)
    bodies = [proposal_body(rng, i) for i in range(count + shadow + old)]
    for body in bodies[count:count + shadow]:
        body["shadow_mode"] = True
    # Stored decisions never change, so the older ones are made at their time: the old ones
    # 40 days ago, the first ten 29 days ago (just inside the window: still counted).
    now = timezone.now()
    ages = {**{i: timedelta(days=40) for i in range(count + shadow, len(bodies))},
            **{i: timedelta(days=29) for i in range(10)}}
    ids = [evaluate_proposal(ctx, parse_proposal(body), now=now - ages[i] if i in ages else None)["decision_id"]
           for i, body in enumerate(bodies)]
    old_ids = ids[count + shadow:]
    return {"window": ids[:count], "shadow": ids[count:count + shadow], "old": old_ids}


def stored_proposal(decision: Decision) -> ProposalInput:
    """The ProposalInput a stored decision was made from (columns + request_data)."""
    data = decision.request_data
    utility = (UtilityResult(decision.utility_mean, decision.utility_std_error)
               if decision.utility_mean is not None else None)

    def sample(name):
        return None if data.get(name) is None else tuple(data[name])

    return ProposalInput(
        proposal_summary=decision.proposal_summary, estimated_impact=decision.estimated_impact,
        agent_id=decision.agent_id, session_id=decision.session_id, phase=data["phase"],
        change_type=data["change_type"], risk_baseline=decision.risk_baseline,
        risk_proposed=decision.risk_proposed, profit_baseline=decision.profit_baseline,
        profit_proposed=decision.profit_proposed, novelty_score=decision.novelty_score,
        complexity_score=decision.complexity_score, quality_score=decision.quality_score,
        quality_subscores=tuple(data["quality_subscores"]), utility_result=utility,
        requires_human_approval=decision.requires_human_approval, time_sensitive=data["time_sensitive"],
        reversible=data["reversible"], shadow_mode=data["shadow_mode"],
        drift_baseline_data=sample("drift_baseline_data"), drift_current_data=sample("drift_current_data"),
        metadata=decision.metadata)


def scalar_changes(decision_ids, before: AegisConfig, after: AegisConfig) -> tuple[Counter, dict[str, str]]:
    """("before → after": count) over the decisions whose status changes, re-deciding each
    with pcw_decide (which recomputes drift from the stored samples under each config), and
    {decision_id: change}."""
    changes: Counter[str] = Counter()
    by_id: dict[str, str] = {}
    for decision in Decision.objects.filter(decision_id__in=list(decision_ids)):
        proposal = stored_proposal(decision)
        old, new = pcw_decide(proposal, before).status, pcw_decide(proposal, after).status
        assert old == decision.status, (decision.decision_id, old, decision.status)  # same config, same status
        if old != new:
            label = f"{old} → {new}"
            changes[label] += 1
            by_id[str(decision.decision_id)] = label
    return changes, by_id
