"""pcw_decide: the worked examples of ENGINE.md §7, the rules of §5, and risk_check (§6)."""

import math
import uuid
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from governance.engine import (
    DriftResult,
    InputError,
    ProposalInput,
    UtilityResult,
    pcw_decide,
    risk_check,
)
from governance.engine.decide import SHADOW_STEP

OVERRIDE_ROLES = ["risk_lead", "security_lead"]
FIXED_TIME = datetime(2026, 11, 26, 7, 0, tzinfo=timezone.utc)


def drift_result(status, kl):
    return DriftResult(status, kl, {"warning": "monitor", "critical": "pause_and_recalibrate"}
                       .get(status, "none"), f"KL {kl}", 100, 100, 0.3, 0.5)


# --- §7 worked examples ------------------------------------------------------------------

def test_example_a_client_defaults_proceed(config, client_proposal):
    decision = pcw_decide(client_proposal(), config)
    assert decision.status == "proceed"
    assert (decision.gates_passed, decision.gates_failed) == (5, 0)
    assert decision.gates_skipped == ("utility",)
    assert "utility" not in decision.gates
    assert decision.gates["risk"].value == 0.5
    assert decision.confidence == 0.5
    assert decision.failing_gates == ()


def test_example_b_novelty_halts_with_override(config, client_proposal):
    decision = pcw_decide(client_proposal(novelty_score=0.9), config)
    assert round(decision.gates["novelty"].value, 6) == 0.880797
    assert decision.status == "halt" and decision.rule == 3
    assert decision.failing_gates == ("novelty",)
    assert decision.override_eligible is True
    assert list(decision.override_requires) == OVERRIDE_ROLES


def test_example_c_complexity_halts_without_override(config, client_proposal):
    decision = pcw_decide(client_proposal(complexity_score=0.4, novelty_score=0.9), config)
    assert decision.status == "halt" and decision.rule == 1
    assert decision.failing_gates == ("novelty", "complexity")
    assert decision.override_eligible is False and decision.override_requires == ()


def test_example_d_high_impact_risk_escalates(config, client_proposal):
    decision = pcw_decide(client_proposal(estimated_impact="high", risk_proposed=0.08), config)
    assert round(decision.gates["risk"].value, 6) == 0.996355
    assert decision.status == "escalate" and decision.rule == 2
    assert decision.failing_gates == ("risk",)


def test_example_e_critical_impact_pauses(config, client_proposal):
    decision = pcw_decide(client_proposal(estimated_impact="critical"), config)
    assert decision.status == "pause" and decision.rule == 5
    assert decision.override_eligible is False


def test_example_f_utility_lcb(config, client_proposal):
    passing = pcw_decide(client_proposal(utility_result=UtilityResult(0.1, 0.05)), config)
    assert round(passing.gates["utility"].value, 6) == 0.017757
    assert passing.status == "proceed"
    assert (passing.gates_passed, passing.gates_failed, passing.gates_skipped) == (6, 0, ())
    failing = pcw_decide(client_proposal(utility_result=UtilityResult(0.05, 0.05)), config)
    assert round(failing.gates["utility"].value, 6) == -0.032243
    assert failing.status == "halt" and failing.failing_gates == ("utility",)
    assert (failing.gates_passed, failing.gates_failed) == (5, 1)


def test_example_g_engine_defaults_proceed(config):
    decision = pcw_decide(ProposalInput("defaults"), config)
    assert decision.status == "proceed" and decision.rule == 6
    assert decision.gates_failed == 0


# --- §5 rules in order ---------------------------------------------------------------------

@pytest.mark.parametrize("impact", ["low", "medium", "high", "critical"])
def test_rule_1_complexity_failure_always_halts_without_override(config, client_proposal, impact):
    decision = pcw_decide(client_proposal(complexity_score=0.3, estimated_impact=impact,
                                          requires_human_approval=True), config,
                          drift=drift_result("critical", 0.9))
    assert (decision.status, decision.rule, decision.override_eligible) == ("halt", 1, False)
    assert decision.next_steps[0] == "Redesign: complexity below the hard floor cannot be overridden"


@pytest.mark.parametrize("impact", ["high", "critical"])
def test_rule_2_other_failure_with_high_impact_escalates(config, client_proposal, impact):
    decision = pcw_decide(client_proposal(quality_score=0.5, estimated_impact=impact), config)
    assert (decision.status, decision.rule) == ("escalate", 2)
    assert decision.override_eligible is True
    assert list(decision.override_requires) == OVERRIDE_ROLES
    assert list(decision.next_steps) == ["Escalate to Risk Lead for review",
                                         "Prepare justification document"]


@pytest.mark.parametrize("impact", ["low", "medium"])
def test_rule_3_other_failure_halts_with_override(config, client_proposal, impact):
    decision = pcw_decide(client_proposal(profit_proposed=0.1, estimated_impact=impact), config,
                          drift=drift_result("critical", 0.9))
    assert (decision.status, decision.rule) == ("halt", 3)
    assert decision.failing_gates == ("profit",)
    assert decision.override_eligible is True
    assert "Request a two-key override (risk_lead + security_lead)" in decision.next_steps


def test_rule_4_critical_drift_pauses(config, client_proposal):
    decision = pcw_decide(client_proposal(estimated_impact="high"), config,
                          drift=drift_result("critical", 0.75))
    assert (decision.status, decision.rule, decision.override_eligible) == ("pause", 4, False)
    assert "KL 0.7500 ≥ tau_critical 0.5000" in decision.rationale
    assert decision.to_dict()["drift"]["status"] == "critical"


@pytest.mark.parametrize("changes", [dict(estimated_impact="high"), dict(estimated_impact="critical"),
                                     dict(requires_human_approval=True)])
def test_rule_5_high_impact_or_human_approval_pauses(config, client_proposal, changes):
    decision = pcw_decide(client_proposal(**changes), config, drift=drift_result("warning", 0.4))
    assert (decision.status, decision.rule, decision.override_eligible) == ("pause", 5, False)


def test_rule_6_proceeds(config, client_proposal):
    decision = pcw_decide(client_proposal(estimated_impact="low"), config,
                          drift=drift_result("normal", 0.01))
    assert (decision.status, decision.rule) == ("proceed", 6)
    assert list(decision.next_steps) == ["Proceed with implementation",
                                         "Monitor drift metrics post-deployment"]


def test_failing_gates_in_fixed_order_and_counts(config):
    proposal = ProposalInput("everything fails", risk_baseline=0.01, risk_proposed=1.0,
                             profit_baseline=5.0, profit_proposed=0.0, novelty_score=1.0,
                             complexity_score=0.0, quality_score=0.0,
                             utility_result=UtilityResult(-1.0, 0.1))
    decision = pcw_decide(proposal, config)
    assert decision.failing_gates == ("risk", "profit", "novelty", "complexity", "quality", "utility")
    assert (decision.gates_passed, decision.gates_failed) == (0, 6)
    assert decision.confidence == min(g.confidence for g in decision.gates.values())


def test_rationale_names_rule_and_every_failing_gate(config, client_proposal):
    decision = pcw_decide(client_proposal(novelty_score=0.9, quality_score=0.6), config)
    assert decision.rationale.startswith("Rule 3 ")
    assert "novelty (value 0.8808, threshold 0.8000)" in decision.rationale
    assert "quality (value 0.6000, threshold 0.7000)" in decision.rationale


# --- constraints ---------------------------------------------------------------------------

def test_constraints_exact_strings_in_order(config, client_proposal):
    decision = pcw_decide(client_proposal(reversible=False, time_sensitive=True), config,
                          drift=drift_result("warning", 0.345678))
    assert list(decision.constraints) == [
        "Drift warning: KL 0.3457 ≥ tau_warning 0.3000; monitor after deployment",
        "Irreversible change: a rollback plan is required",
        "Time-sensitive: review within 4 hours",
    ]
    assert decision.status == "proceed"


def test_no_constraints_by_default(config, client_proposal):
    assert pcw_decide(client_proposal(), config).constraints == ()


# --- drift from the proposal -------------------------------------------------------------

def test_drift_computed_from_proposal_data(config, client_proposal):
    rng = np.random.default_rng(7)
    baseline = tuple(rng.normal(0.0, 1.0, 500).tolist())
    shifted = tuple(rng.normal(3.0, 1.0, 500).tolist())
    decision = pcw_decide(client_proposal(drift_baseline_data=baseline, drift_current_data=shifted), config)
    assert decision.drift.status == "critical"
    assert decision.status == "pause" and decision.rule == 4
    assert set(decision.to_dict()["drift"]) == {"status", "kl_divergence", "action", "message"}


def test_drift_warning_from_proposal_adds_constraint(config, client_proposal):
    rng = np.random.default_rng(11)
    baseline = tuple(rng.normal(0.0, 1.0, 2000).tolist())
    current = tuple(rng.normal(0.0, 1.0, 2000).tolist())
    config = config.replace(tau_warning=1e-6, tau_critical=10.0)
    decision = pcw_decide(client_proposal(drift_baseline_data=baseline, drift_current_data=current), config)
    assert decision.drift.status == "warning" and decision.status == "proceed"
    assert decision.constraints[0].startswith("Drift warning: KL ")


def test_drift_without_current_sample_is_not_reported(config, client_proposal):
    decision = pcw_decide(client_proposal(drift_baseline_data=tuple(float(i) for i in range(40))), config)
    assert decision.drift.status == "insufficient_data"
    assert "drift" not in decision.to_dict()
    assert decision.status == "proceed"


def test_drift_argument_takes_precedence_over_proposal_data(config, client_proposal):
    proposal = client_proposal(drift_baseline_data=tuple(float(i) for i in range(40)),
                               drift_current_data=tuple(float(i) for i in range(40)))
    given = drift_result("critical", 0.9)
    assert pcw_decide(proposal, config, drift=given).drift is given


# --- shadow mode, identity, serialisation ----------------------------------------------------

@pytest.mark.parametrize("changes, live_eligible", [
    ({}, False), (dict(novelty_score=0.9), True), (dict(complexity_score=0.1), False),
    (dict(estimated_impact="high", risk_proposed=0.08), True), (dict(estimated_impact="critical"), False)])
def test_shadow_mode_gives_the_same_gates_and_status_but_is_recorded_only(config, client_proposal, changes,
                                                                          live_eligible):
    live = pcw_decide(client_proposal(**changes), config, decision_id="d", now=FIXED_TIME)
    shadow = pcw_decide(client_proposal(shadow_mode=True, **changes), config, decision_id="d", now=FIXED_TIME)
    assert shadow.shadow_mode is True and live.shadow_mode is False
    assert live.override_eligible is live_eligible
    assert (shadow.status, shadow.rule, shadow.gates, shadow.rationale, shadow.constraints) == (
        live.status, live.rule, live.gates, live.rationale, live.constraints)
    body = shadow.to_dict()
    assert body["override_eligible"] is False and body["override_requires"] == []
    assert body["next_steps"] == [SHADOW_STEP] and "recorded only" in SHADOW_STEP


def test_decision_id_timestamp_and_config_version(config, client_proposal):
    decision = pcw_decide(client_proposal(), config, config_version=7)
    assert uuid.UUID(decision.decision_id).version == 4
    assert decision.timestamp.tzinfo is timezone.utc
    assert abs(datetime.now(timezone.utc) - decision.timestamp) < timedelta(seconds=5)
    body = decision.to_dict()
    assert body["config_version"] == 7
    assert datetime.fromisoformat(body["timestamp"]).utcoffset() == timedelta(0)
    other = pcw_decide(client_proposal(), config)
    assert other.decision_id != decision.decision_id and other.config_version is None


def test_given_id_and_aware_time_are_normalised(config, client_proposal):
    given = uuid.uuid4()
    local = datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    decision = pcw_decide(client_proposal(), config, decision_id=given, now=local)
    assert decision.decision_id == str(given)
    assert decision.to_dict()["timestamp"] == "2026-01-01T10:00:00+00:00"
    with pytest.raises(ValueError):
        pcw_decide(client_proposal(), config, now=datetime(2026, 1, 1))


def test_to_dict_has_the_api_shape_with_rounded_numbers(config, client_proposal):
    decision = pcw_decide(client_proposal(novelty_score=0.9, utility_result=UtilityResult(0.1, 0.05)),
                          config)
    body = decision.to_dict()
    assert set(body) == {"status", "confidence", "gates_passed", "gates_failed", "failing_gates",
                         "gates_skipped", "rationale", "next_steps", "constraints", "decision_id",
                         "timestamp", "override_eligible", "override_requires", "shadow_mode",
                         "config_version", "gates"}
    assert body["gates"]["novelty"]["value"] == 0.8808
    assert body["gates"]["utility"]["value"] == 0.0178
    assert body["confidence"] == round(decision.confidence, 4)
    assert decision.gates["utility"].value != 0.0178  # the engine keeps full precision
    for name, gate in body["gates"].items():
        assert set(gate) == {"passed", "value", "threshold", "confidence", "message"}
        for key in ("value", "threshold", "confidence"):
            assert gate[key] == round(gate[key], 4)
    assert isinstance(body["failing_gates"], list) and isinstance(body["next_steps"], list)


# --- §6 risk_check --------------------------------------------------------------------------

def test_risk_check_threshold_is_exclusive():
    assert risk_check(0.2)["safe"] is True
    at = risk_check(0.3)
    assert at == {"safe": False, "risk_score": 0.3, "threshold": 0.3, "rationale": at["rationale"]}
    assert risk_check(math.nextafter(0.3, 0.0))["safe"] is True
    assert risk_check(0.5, threshold=0.6)["safe"] is True
    assert risk_check(0, 1)["safe"] is True
    assert "0.3000" in at["rationale"]


@pytest.mark.parametrize("risk_score, threshold, field", [
    (True, 0.3, "risk_score"), (1.5, 0.3, "risk_score"), (-0.1, 0.3, "risk_score"),
    (math.nan, 0.3, "risk_score"), ("0.2", 0.3, "risk_score"), (0.2, False, "threshold"),
    (0.2, math.inf, "threshold"), (0.2, 1.01, "threshold"),
])
def test_risk_check_rejects_bad_numbers(risk_score, threshold, field):
    with pytest.raises(InputError) as caught:
        risk_check(risk_score, threshold)
    assert caught.value.fields == [field]
    assert caught.value.kind == "invalid"
    assert field in str(caught.value)
