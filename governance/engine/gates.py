"""The six quantitative gates (ENGINE.md §3).

`GateEvaluator` holds one configuration and the constants derived from it (posterior
factors, the utility z-value), so evaluating a proposal is a handful of float operations.
`gate_evaluator(config)` returns a cached evaluator per configuration.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any, NamedTuple, Sequence

from .bayesian import BayesianPosterior
from .utility import lower_confidence_bound, utility_confidence, utility_z

if TYPE_CHECKING:
    from .config import AegisConfig
    from .inputs import ProposalInput

# The order of gates everywhere: `gates`, `failing_gates` and the batch bitmask bits.
GATE_NAMES: tuple[str, ...] = ("risk", "profit", "novelty", "complexity", "quality", "utility")


class GateResult(NamedTuple):
    """One evaluated gate; values keep full precision, `to_dict` rounds for the API."""

    name: str
    passed: bool
    value: float
    threshold: float
    confidence: float
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "value": round(self.value, 4),
                "threshold": round(self.threshold, 4), "confidence": round(self.confidence, 4),
                "message": self.message}


def novelty_logistic(novelty_score: float, k: float, midpoint: float) -> float:
    """G(n) = 1 / (1 + exp(−k·(n − N0))); 0.0 where exp overflows (as numpy gives)."""
    try:
        return 1.0 / (1.0 + math.exp(-k * (novelty_score - midpoint)))
    except OverflowError:
        return 0.0


class GateEvaluator:
    """The six gates under one configuration.

    Gate messages depend on the configuration only (the per-proposal numbers are the
    gate's `value`, and the decision's rationale quotes them for failing gates), so they
    are formatted once here: formatting floats would otherwise be most of a gate's cost.
    """

    def __init__(self, config: "AegisConfig"):
        self.config = config
        self.posterior = BayesianPosterior.from_config(config)
        self.utility_z = utility_z(config.utility_confidence)
        confidence_prob = f"{config.trigger_confidence_prob:.4f}"
        risk = f"P(risk ratio ≥ {config.risk_trigger_factor:.4f})"
        profit = f"P(profit-loss ratio ≥ {config.profit_trigger_factor:.4f})"
        # (message when passed, message when failed) per gate
        self._risk_messages = (f"{risk} ≤ {confidence_prob}: risk growth not confirmed",
                               f"{risk} > {confidence_prob}: risk grew by the trigger factor")
        self._profit_messages = (f"{profit} ≤ {confidence_prob}: profit loss not confirmed",
                                 f"{profit} > {confidence_prob}: profit fell by the trigger factor")
        novelty = f"{config.novelty_threshold:.4f}"
        self._novelty_messages = (f"Novelty G(n) < {novelty}",
                                  f"Novelty G(n) ≥ {novelty}: too novel to proceed unreviewed")
        floor = f"{config.complexity_floor:.4f}"
        self._complexity_messages = (f"Complexity score ≥ floor {floor}",
                                     f"Complexity score < floor {floor}: below the hard floor, "
                                     f"cannot be overridden")
        minimum = f"{config.quality_min_score:.4f}"
        self._quality_messages = (f"Quality score ≥ minimum {minimum}", f"Quality score < minimum {minimum}")
        lcb = f"LCB = mean − {self.utility_z:.4f} × std_error"
        threshold = f"{config.utility_threshold:.4f}"
        self._utility_messages = (f"{lcb} > threshold {threshold}", f"{lcb} ≤ threshold {threshold}")

    def _trigger(self, name: str, ratio: float, factor: float, messages: tuple[str, str]) -> GateResult:
        """Risk and profit: fail when P(ratio ≥ factor | ratio) > trigger_confidence_prob."""
        probability = self.posterior.prob_at_least(factor, ratio)
        threshold = self.config.trigger_confidence_prob
        if probability <= threshold:
            return GateResult(name, True, probability, threshold, 1.0 - probability, messages[0])
        return GateResult(name, False, probability, threshold, probability, messages[1])

    def risk(self, risk_baseline: float, risk_proposed: float) -> GateResult:
        """Δ_R = risk_proposed / max(risk_baseline, epsilon_R)."""
        config = self.config
        ratio = risk_proposed / max(risk_baseline, config.epsilon_R)
        return self._trigger("risk", ratio, config.risk_trigger_factor, self._risk_messages)

    def profit(self, profit_baseline: float, profit_proposed: float) -> GateResult:
        """Δ_P = profit_baseline / max(profit_proposed, epsilon_P)."""
        config = self.config
        ratio = profit_baseline / max(profit_proposed, config.epsilon_P)
        return self._trigger("profit", ratio, config.profit_trigger_factor, self._profit_messages)

    def novelty(self, novelty_score: float) -> GateResult:
        config = self.config
        value = novelty_logistic(novelty_score, config.novelty_k, config.novelty_N0)
        passed = value < config.novelty_threshold
        return GateResult("novelty", passed, value, config.novelty_threshold, 1.0,
                          self._novelty_messages[not passed])

    def complexity(self, complexity_score: float) -> GateResult:
        floor = self.config.complexity_floor
        passed = complexity_score >= floor
        return GateResult("complexity", passed, complexity_score, floor, 1.0,
                          self._complexity_messages[not passed])

    def quality(self, quality_score: float, subscores: Sequence[float]) -> GateResult:
        """Passes when quality_score ≥ quality_min_score and no subscore is exactly 0.0."""
        minimum = self.config.quality_min_score
        score_ok = quality_score >= minimum
        message = self._quality_messages[not score_ok]
        if 0.0 in subscores:
            zero_indexes = ", ".join(str(i) for i, s in enumerate(subscores) if s == 0.0)
            return GateResult("quality", False, quality_score, minimum, 1.0,
                              f"{message}; zero subscore(s) at index {zero_indexes}")
        if score_ok:
            message += "; no zero subscores"
        return GateResult("quality", score_ok, quality_score, minimum, 1.0, message)

    def utility(self, mean: float, std_error: float) -> GateResult:
        threshold = self.config.utility_threshold
        lcb = lower_confidence_bound(mean, std_error, self.utility_z)
        passed = lcb > threshold
        return GateResult("utility", passed, lcb, threshold,
                          utility_confidence(mean, std_error, threshold, passed),
                          self._utility_messages[not passed])

    def evaluate(self, proposal: "ProposalInput") -> dict[str, GateResult]:
        """Every applicable gate in GATE_NAMES order; utility only when utility_result is given."""
        gates = {
            "risk": self.risk(proposal.risk_baseline, proposal.risk_proposed),
            "profit": self.profit(proposal.profit_baseline, proposal.profit_proposed),
            "novelty": self.novelty(proposal.novelty_score),
            "complexity": self.complexity(proposal.complexity_score),
            "quality": self.quality(proposal.quality_score, proposal.quality_subscores),
        }
        utility = proposal.utility_result
        if utility is not None:
            gates["utility"] = self.utility(utility.mean, utility.std_error)
        return gates


@functools.lru_cache(maxsize=32)
def gate_evaluator(config: "AegisConfig") -> GateEvaluator:
    """The cached evaluator of a (frozen, hashable) configuration."""
    return GateEvaluator(config)


def evaluate_gates(proposal: "ProposalInput", config: "AegisConfig") -> dict[str, GateResult]:
    return gate_evaluator(config).evaluate(proposal)
