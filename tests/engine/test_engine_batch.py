"""evaluate_batch gives, row for row, what pcw_decide gives."""

import math
from datetime import datetime, timezone

import numpy as np
import pytest

from governance.engine import (
    GATE_BITS,
    STATUS_CODES,
    AegisConfig,
    DriftResult,
    ProposalInput,
    UtilityResult,
    evaluate_batch,
    gate_evaluator,
    pcw_decide,
    proposals_to_columns,
)
from governance.engine.batch import REQUIRED_COLUMNS

FIXED_TIME = datetime(2026, 1, 1, tzinfo=timezone.utc)
CRITICAL_DRIFT = DriftResult("critical", 0.9, "pause_and_recalibrate", "", 100, 100, 0.3, 0.5)
below = lambda x: math.nextafter(x, -math.inf)  # noqa: E731
above = lambda x: math.nextafter(x, math.inf)  # noqa: E731
NOVELTY_CUT_OFF = 0.7 + math.log(4) / 10


def pick(rng, boundary, low, high):
    """A boundary value one time in four, else uniform in [low, high]."""
    if rng.random() < 0.25:
        return float(boundary[rng.integers(len(boundary))])
    return float(rng.uniform(low, high))


def random_proposal(rng) -> ProposalInput:
    subscores = tuple(float(s) for s in rng.uniform(0, 1, rng.integers(0, 6)))
    if subscores and rng.random() < 0.15:
        subscores = subscores[:-1] + (0.0,)
    utility = None
    if rng.random() < 0.5:
        std_error = 0.0 if rng.random() < 0.2 else float(rng.uniform(0, 0.1))
        utility = UtilityResult(float(rng.normal(0.05, 0.1)), std_error)
    return ProposalInput(
        "random",
        risk_baseline=pick(rng, [0.0, 0.01, 0.02, 0.4, 0.1, below(0.01), 1.0], 0, 0.3),
        risk_proposed=pick(rng, [0.0, 0.05, 1.0, 0.34195, 0.34196, 0.08], 0, 1),
        profit_baseline=pick(rng, [0.0, 0.98, 1.0, 2.5, 1e6], 0, 3),
        profit_proposed=pick(rng, [0.0, 0.01, 0.98, 0.4, 1.0], 0, 3),
        novelty_score=pick(rng, [0.0, 0.7, NOVELTY_CUT_OFF, below(NOVELTY_CUT_OFF),
                                 above(NOVELTY_CUT_OFF), 1.0], 0, 1),
        complexity_score=pick(rng, [0.5, below(0.5), above(0.5), 0.0, 1.0], 0, 1),
        quality_score=pick(rng, [0.7, below(0.7), above(0.7), 0.0, 1.0], 0, 1),
        quality_subscores=subscores,
        utility_result=utility,
        estimated_impact=("low", "medium", "high", "critical")[rng.integers(4)],
        requires_human_approval=bool(rng.random() < 0.2),
    )


CONFIGS = {
    "default": AegisConfig.default(),
    # Ties on purpose: Δ 2.5 gives P = 0.5 exactly, novelty 0.7 gives G = 0.5 exactly.
    "exact_ties": AegisConfig.default().replace(trigger_confidence_prob=0.5, novelty_threshold=0.5),
    "predictive": AegisConfig.default().replace(posterior_predictive=True, prior_mean=0.4,
                                                utility_threshold=0.02, utility_confidence=0.9,
                                                complexity_floor=0.3, quality_min_score=0.6,
                                                novelty_k=25.0, epsilon_R=0.05),
}


def assert_batch_matches_scalar(proposals, config, drift_critical):
    columns = proposals_to_columns(proposals)
    columns["drift_critical"] = drift_critical
    result = evaluate_batch(columns, config)
    assert len(result) == len(proposals)
    max_confidence_gap = 0.0
    for row, (proposal, critical) in enumerate(zip(proposals, drift_critical)):
        decision = pcw_decide(proposal, config, drift=CRITICAL_DRIFT if critical else None,
                              decision_id="x", now=FIXED_TIME)
        expected_mask = sum(GATE_BITS[name] for name in decision.failing_gates)
        assert (result.status[row], result.failing_gates[row]) == (
            STATUS_CODES[decision.status], expected_mask), (row, proposal, decision.failing_gates)
        assert result.failing_gate_names(row) == decision.failing_gates
        max_confidence_gap = max(max_confidence_gap, abs(result.confidence[row] - decision.confidence))
    assert max_confidence_gap <= 1e-9


@pytest.mark.parametrize("config_name", list(CONFIGS))
def test_batch_equals_scalar_on_10000_random_proposals(config_name):
    rng = np.random.default_rng(20261126)
    proposals = [random_proposal(rng) for _ in range(10_000)]
    drift_critical = rng.random(len(proposals)) < 0.1
    assert_batch_matches_scalar(proposals, CONFIGS[config_name], drift_critical)


def test_random_mix_reaches_every_status_and_gate():
    rng = np.random.default_rng(20261126)
    proposals = [random_proposal(rng) for _ in range(10_000)]
    result = evaluate_batch(proposals_to_columns(proposals), CONFIGS["default"])
    assert set(result.status_names()) == {"proceed", "pause", "escalate", "halt"}
    for bit in GATE_BITS.values():
        assert (result.failing_gates & bit).any()


def test_near_ties_follow_the_scalar_path():
    """Where vectorised and scalar erfc differ in the last bit, a threshold set to the
    scalar value must still be a pass in both paths."""
    rng = np.random.default_rng(0)
    posterior = gate_evaluator(AegisConfig.default()).posterior
    ratios = rng.uniform(2.0, 4.0, 20_000)
    scalar = np.array([posterior.prob_at_least(2.0, r) for r in ratios])
    mismatched = np.flatnonzero(posterior.prob_at_least_array(2.0, ratios) != scalar)
    assert mismatched.size, "no last-bit difference found to exercise the tie handling"
    row = int(mismatched[0])
    config = AegisConfig.default().replace(trigger_confidence_prob=float(scalar[row]))
    proposal = ProposalInput("tie", risk_baseline=0.1, risk_proposed=float(ratios[row]) * 0.1)
    decision = pcw_decide(proposal, config)
    result = evaluate_batch(proposals_to_columns([proposal]), config)
    assert result.failing_gate_names(0) == decision.failing_gates


def test_optional_columns_default_to_engine_defaults(config):
    columns = {name: np.array([value]) for name, value in dict(
        risk_baseline=0.02, risk_proposed=0.05, profit_baseline=0.98, profit_proposed=0.98,
        novelty_score=0.75, complexity_score=0.8, quality_score=0.85).items()}
    result = evaluate_batch(columns, config)
    assert result.status_names().tolist() == ["proceed"]
    assert result.confidence.tolist() == [0.5]


def test_min_subscore_column_marks_zero_subscores(config):
    columns = {name: np.full(3, 0.8) for name in (
        "novelty_score", "complexity_score", "quality_score")}
    columns |= {name: np.zeros(3) for name in (
        "risk_baseline", "risk_proposed", "profit_baseline", "profit_proposed")}
    columns["min_subscore"] = np.array([0.0, 0.2, np.nan])
    result = evaluate_batch(columns, config)
    assert [result.failing_gate_names(i) for i in range(3)] == [("quality",), (), ()]


def test_empty_batch(config):
    columns = {name: np.array([]) for name in REQUIRED_COLUMNS}
    assert len(evaluate_batch(columns, config)) == 0


@pytest.mark.parametrize("change, words", [
    (dict(surprise=np.zeros(2)), "unknown column"),
    (dict(impact=np.array([1, 4])), "impact"),
    (dict(impact=np.array(["low", "high"])), "impact"),
    (dict(quality_score=np.zeros(3)), "length 2"),
    (dict(utility_mean=np.zeros(2)), "go together"),
])
def test_column_errors(config, change, words):
    columns = {name: np.zeros(2) for name in REQUIRED_COLUMNS} | change
    with pytest.raises(ValueError, match=words):
        evaluate_batch(columns, config)


def test_missing_column(config):
    with pytest.raises(ValueError, match="missing column"):
        evaluate_batch({"risk_proposed": np.zeros(1)}, config)
