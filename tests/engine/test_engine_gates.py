"""The six gates at, just below and just above their thresholds (ENGINE.md §3)."""

import math
from statistics import NormalDist

import pytest

from governance.engine import GateEvaluator, ProposalInput, UtilityResult, evaluate_gates
from governance.engine.utility import lower_confidence_bound, utility_confidence, utility_z

below = lambda x: math.nextafter(x, -math.inf)  # noqa: E731
above = lambda x: math.nextafter(x, math.inf)  # noqa: E731


def gates_for(config, **changes):
    return GateEvaluator(config.replace(**changes))


# --- risk and profit: fail when P > trigger_confidence_prob -----------------------------

def test_risk_value_exactly_at_threshold_passes(config):
    # Δ_R = 1.0 / 0.4 = 2.5 gives P = 0.5 exactly with the default posterior.
    gate = gates_for(config, trigger_confidence_prob=0.5).risk(0.4, 1.0)
    assert gate.value == 0.5 and gate.threshold == 0.5
    assert gate.passed and gate.confidence == 0.5


def test_risk_value_just_above_threshold_fails(config):
    gate = gates_for(config, trigger_confidence_prob=below(0.5)).risk(0.4, 1.0)
    assert not gate.passed and gate.confidence == gate.value == 0.5


def test_risk_value_just_below_threshold_passes(config):
    assert gates_for(config, trigger_confidence_prob=above(0.5)).risk(0.4, 1.0).passed


def test_risk_inputs_either_side_of_the_tie(config):
    evaluator = gates_for(config, trigger_confidence_prob=0.5)
    larger_ratio = evaluator.risk(0.399, 1.0)  # Δ_R a little above 2.5 → P above 0.5
    smaller_ratio = evaluator.risk(0.4, 0.999)
    assert larger_ratio.value > 0.5 and not larger_ratio.passed
    assert smaller_ratio.value < 0.5 and smaller_ratio.passed


def test_risk_uses_epsilon_floor_for_zero_baseline(config):
    gate = GateEvaluator(config).risk(0.0, 0.05)  # Δ_R = 0.05 / 0.01 = 5
    assert gate.value == pytest.approx(GateEvaluator(config).posterior.prob_at_least(2.0, 5.0))
    assert not gate.passed


def test_risk_default_threshold_boundary(config):
    evaluator = GateEvaluator(config)
    assert evaluator.risk(0.02, 0.05).passed            # Δ 2.5, P 0.5
    assert evaluator.risk(0.1, 0.34194).passed          # Δ 3.4194, P just below 0.95
    assert not evaluator.risk(0.1, 0.34196).passed      # Δ 3.4196, P just above 0.95
    failed = evaluator.risk(0.02, 0.08)                 # Δ 4, P 0.996355
    assert not failed.passed and round(failed.value, 6) == 0.996355
    assert failed.confidence == failed.value


def test_profit_gate_mirrors_risk_on_profit_loss(config):
    evaluator = gates_for(config, trigger_confidence_prob=0.5)
    at = evaluator.profit(1.0, 0.4)  # Δ_P = profit_baseline / profit_proposed = 2.5
    assert at.value == 0.5 and at.passed
    assert not gates_for(config, trigger_confidence_prob=below(0.5)).profit(1.0, 0.4).passed
    assert gates_for(config, trigger_confidence_prob=above(0.5)).profit(1.0, 0.4).passed


def test_profit_both_zero_passes(config):
    gate = GateEvaluator(config).profit(0.0, 0.0)
    assert gate.passed and gate.value < 1e-5
    assert gate.confidence == 1.0 - gate.value


def test_profit_loss_above_factor_fails(config):
    gate = GateEvaluator(config).profit(2.0, 0.5)  # Δ_P = 4
    assert not gate.passed and round(gate.value, 6) == 0.996355


# --- novelty: fail when G ≥ novelty_threshold -----------------------------------------

def test_novelty_value_exactly_at_threshold_fails(config):
    gate = gates_for(config, novelty_threshold=0.5).novelty(0.7)  # G(N0) = 0.5 exactly
    assert gate.value == 0.5 and not gate.passed and gate.confidence == 1.0


def test_novelty_value_just_below_threshold_passes(config):
    assert gates_for(config, novelty_threshold=above(0.5)).novelty(0.7).passed


def test_novelty_value_just_above_threshold_fails(config):
    assert not gates_for(config, novelty_threshold=below(0.5)).novelty(0.7).passed


def test_novelty_reference_values_and_cut_off(config):
    evaluator = GateEvaluator(config)
    assert round(evaluator.novelty(0.75).value, 4) == 0.6225 and evaluator.novelty(0.75).passed
    assert round(evaluator.novelty(0.85).value, 4) == 0.8176 and not evaluator.novelty(0.85).passed
    assert round(evaluator.novelty(0.9).value, 6) == 0.880797
    cut_off = 0.7 + math.log(4) / 10  # ≈ 0.838629
    assert evaluator.novelty(cut_off - 1e-9).passed
    assert not evaluator.novelty(cut_off + 1e-9).passed


def test_novelty_logistic_overflow_gives_zero(config):
    gate = gates_for(config, novelty_k=1e6).novelty(0.0)  # exp(7e5) overflows
    assert gate.value == 0.0 and gate.passed


# --- complexity: pass when score ≥ floor -----------------------------------------------

def test_complexity_at_below_above_floor(config):
    evaluator = GateEvaluator(config)
    assert evaluator.complexity(0.5).passed
    assert not evaluator.complexity(below(0.5)).passed
    assert evaluator.complexity(above(0.5)).passed
    failed = evaluator.complexity(0.4999)
    assert not failed.passed and failed.value == 0.4999 and failed.threshold == 0.5
    assert "cannot be overridden" in failed.message


# --- quality: pass when score ≥ minimum and no subscore is 0.0 --------------------------

def test_quality_at_below_above_minimum(config):
    evaluator = GateEvaluator(config)
    assert evaluator.quality(0.7, (0.7,)).passed
    assert not evaluator.quality(below(0.7), (0.7,)).passed
    assert evaluator.quality(above(0.7), (0.7,)).passed


def test_quality_zero_subscores_fail_and_are_named_by_index(config):
    gate = GateEvaluator(config).quality(0.9, (0.8, 0.0, 0.5, 0.0))
    assert not gate.passed
    assert "zero subscore(s) at index 1, 3" in gate.message


def test_quality_subscore_just_above_zero_passes(config):
    evaluator = GateEvaluator(config)
    assert evaluator.quality(0.9, (above(0.0), 1.0)).passed
    assert evaluator.quality(0.9, ()).passed


# --- utility: pass when LCB > utility_threshold (strict) -------------------------------

def test_utility_z_is_1_644854_by_default(config):
    assert round(GateEvaluator(config).utility_z, 6) == 1.644854
    assert utility_z(0.95) == NormalDist().inv_cdf(0.95)


def test_utility_worked_example_f(config):
    evaluator = GateEvaluator(config)
    passing = evaluator.utility(0.1, 0.05)
    assert round(passing.value, 6) == 0.017757 and passing.passed
    failing = evaluator.utility(0.05, 0.05)
    assert round(failing.value, 6) == -0.032243 and not failing.passed


def test_utility_lcb_exactly_at_threshold_fails(config):
    evaluator = GateEvaluator(config)
    lcb = lower_confidence_bound(0.1, 0.05, evaluator.utility_z)
    assert not gates_for(config, utility_threshold=lcb).utility(0.1, 0.05).passed
    assert gates_for(config, utility_threshold=below(lcb)).utility(0.1, 0.05).passed
    assert not gates_for(config, utility_threshold=above(lcb)).utility(0.1, 0.05).passed


def test_utility_with_zero_std_error(config):
    evaluator = GateEvaluator(config)
    at = evaluator.utility(0.0, 0.0)
    assert at.value == 0.0 and not at.passed and at.confidence == 1.0
    assert evaluator.utility(above(0.0), 0.0).passed
    assert evaluator.utility(above(0.0), 0.0).confidence == 1.0
    assert not evaluator.utility(below(0.0), 0.0).passed


def test_utility_confidence_is_phi_when_passed_and_its_complement_when_failed(config):
    evaluator = GateEvaluator(config)
    passed = evaluator.utility(0.1, 0.05)
    assert passed.confidence == pytest.approx(NormalDist().cdf(2.0), abs=1e-12)
    failed = evaluator.utility(0.05, 0.05)
    assert failed.confidence == pytest.approx(1 - NormalDist().cdf(1.0), abs=1e-12)
    assert utility_confidence(0.1, 0.0, 0.0, True) == 1.0


# --- evaluate ----------------------------------------------------------------------------

def test_evaluate_orders_gates_and_skips_absent_utility(config):
    proposal = ProposalInput("x")
    assert list(evaluate_gates(proposal, config)) == ["risk", "profit", "novelty", "complexity", "quality"]
    with_utility = ProposalInput("x", utility_result=UtilityResult(0.1, 0.05))
    assert list(evaluate_gates(with_utility, config))[-1] == "utility"


def test_gate_result_to_dict_rounds_to_four_decimals(config):
    gate = GateEvaluator(config).novelty(0.9)
    assert gate.to_dict() == {"passed": False, "value": 0.8808, "threshold": 0.8,
                              "confidence": 1.0, "message": gate.message}
    assert gate.value == 1 / (1 + math.exp(-10.0 * (0.9 - 0.7)))  # full precision
