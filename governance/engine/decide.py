"""The decision rules (ENGINE.md §5) and the quick risk check (§6)."""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, NamedTuple

from .drift import CRITICAL, WARNING, DriftMonitor, DriftResult
from .gates import GateResult, gate_evaluator
from .inputs import parse_unit_interval

if TYPE_CHECKING:
    from .config import AegisConfig
    from .inputs import ProposalInput

PROCEED, PAUSE, ESCALATE, HALT = "proceed", "pause", "escalate", "halt"
STATUSES: tuple[str, ...] = (PROCEED, PAUSE, ESCALATE, HALT)  # index = batch status code
HIGH_IMPACT = frozenset({"high", "critical"})
OVERRIDE_ROLES: tuple[str, ...] = ("risk_lead", "security_lead")
RULE_STATUS: dict[int, str] = {1: HALT, 2: ESCALATE, 3: HALT, 4: PAUSE, 5: PAUSE, 6: PROCEED}
OVERRIDABLE_RULES = frozenset({2, 3})

IRREVERSIBLE_CONSTRAINT = "Irreversible change: a rollback plan is required"
TIME_SENSITIVE_CONSTRAINT = "Time-sensitive: review within 4 hours"
OVERRIDE_STEP = "Request a two-key override (risk_lead + security_lead)"
SHADOW_STEP = "Shadow mode: recorded only; nothing is enforced, and no review or override is opened"


class Decision(NamedTuple):
    """The engine's verdict on one proposal; `to_dict` gives the API's Decision body.

    An immutable record (a NamedTuple rather than a frozen dataclass, which costs three
    times as much to build on this hot path).
    """

    status: str
    rule: int  # the decision rule (1–6) that matched first
    confidence: float
    gates: dict[str, GateResult]  # evaluated gates only, in GATE_NAMES order
    failing_gates: tuple[str, ...]
    gates_skipped: tuple[str, ...]
    rationale: str
    next_steps: tuple[str, ...]
    constraints: tuple[str, ...]
    override_eligible: bool
    override_requires: tuple[str, ...]
    shadow_mode: bool
    decision_id: str
    timestamp: datetime
    config_version: int | None
    drift: DriftResult | None  # as checked; reported only when KL was computed

    @property
    def gates_failed(self) -> int:
        return len(self.failing_gates)

    @property
    def gates_passed(self) -> int:
        return len(self.gates) - len(self.failing_gates)

    def to_dict(self) -> dict[str, Any]:
        """API shape (API.md "Decision"), numbers rounded to 4 decimals."""
        data: dict[str, Any] = {
            "status": self.status,
            "confidence": round(self.confidence, 4),
            "gates_passed": self.gates_passed,
            "gates_failed": self.gates_failed,
            "failing_gates": list(self.failing_gates),
            "gates_skipped": list(self.gates_skipped),
            "rationale": self.rationale,
            "next_steps": list(self.next_steps),
            "constraints": list(self.constraints),
            "decision_id": self.decision_id,
            "timestamp": self.timestamp.isoformat(),
            "override_eligible": self.override_eligible,
            "override_requires": list(self.override_requires),
            "shadow_mode": self.shadow_mode,
            "config_version": self.config_version,
            "gates": {name: gate.to_dict() for name, gate in self.gates.items()},
        }
        if self.drift is not None and self.drift.computed:
            data["drift"] = self.drift.to_dict()
        return data


def deciding_rule(failing_gates: tuple[str, ...], high_impact: bool, drift_critical: bool,
                  requires_human_approval: bool) -> int:
    """The first of the rules 1–6 of ENGINE.md §5 that matches."""
    if "complexity" in failing_gates:
        return 1
    if failing_gates:
        return 2 if high_impact else 3
    if drift_critical:
        return 4
    if high_impact or requires_human_approval:
        return 5
    return 6


def pcw_decide(proposal: "ProposalInput", config: "AegisConfig", *,
               drift: DriftResult | None = None, config_version: int | None = None,
               decision_id: str | uuid.UUID | None = None, now: datetime | None = None) -> Decision:
    """Evaluate the gates and apply the decision rules.

    `drift` is a check already made by the caller (the API's tenant window). Without it, a
    proposal carrying drift_baseline_data is checked here against its drift_current_data
    (an absent current sample gives `insufficient_data`). A shadow proposal gets the same gates, status and rationale, but it is recorded only:
    it never offers an override, and its one next step says so. `now` must be
    timezone-aware; the timestamp is stored in UTC.
    """
    gates = gate_evaluator(config).evaluate(proposal)
    failing = tuple([name for name, gate in gates.items() if not gate.passed])
    confidence = min([gate.confidence for gate in gates.values()])
    if drift is None and proposal.drift_baseline_data is not None:
        monitor = DriftMonitor.from_config(proposal.drift_baseline_data, config)
        drift = monitor.check(proposal.drift_current_data or ())
    drift_status = drift.status if drift is not None else None
    impact = proposal.estimated_impact
    high_impact = impact in HIGH_IMPACT
    rule = deciding_rule(failing, high_impact, drift_status == CRITICAL,
                         proposal.requires_human_approval)
    status = RULE_STATUS[rule]
    shadow = proposal.shadow_mode
    overridable = rule in OVERRIDABLE_RULES and not shadow

    constraints = []
    if drift_status == WARNING:
        constraints.append(f"Drift warning: KL {drift.kl_divergence:.4f} ≥ tau_warning "
                           f"{drift.tau_warning:.4f}; monitor after deployment")
    if not proposal.reversible:
        constraints.append(IRREVERSIBLE_CONSTRAINT)
    if proposal.time_sensitive:
        constraints.append(TIME_SENSITIVE_CONSTRAINT)

    # Positional, in field order: keyword construction of a 16-field NamedTuple costs
    # about a tenth of a whole decision.
    return Decision(
        status,
        rule,
        confidence,
        gates,
        failing,
        () if "utility" in gates else ("utility",),  # gates_skipped
        _rationale(rule, status, gates, failing, impact, proposal, drift),
        (SHADOW_STEP,) if shadow else _next_steps(rule, failing, impact, proposal.requires_human_approval),
        tuple(constraints),
        overridable,  # override_eligible
        OVERRIDE_ROLES if overridable else (),  # override_requires
        shadow,
        str(decision_id) if decision_id is not None else new_decision_id(),
        _utc(now),  # timestamp
        config_version,
        drift,
    )


def new_decision_id() -> str:
    """A random UUID4 string, as str(uuid.uuid4()) gives, without building a UUID object
    (which costs a tenth of a scalar decision)."""
    octets = bytearray(os.urandom(16))
    octets[6] = octets[6] & 0x0F | 0x40  # version 4
    octets[8] = octets[8] & 0x3F | 0x80  # RFC 4122 variant
    digits = octets.hex()
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(timezone.utc)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    return now.astimezone(timezone.utc)


def _rationale(rule: int, status: str, gates: dict[str, GateResult], failing: tuple[str, ...],
               impact: str, proposal: "ProposalInput", drift: DriftResult | None) -> str:
    """Names the deciding rule and every failing gate with its value and threshold."""
    if failing:
        reason = {1: "complexity below the hard floor",
                  2: f"a gate failed and impact is {impact}",
                  3: "a gate failed"}[rule]
        details = "; ".join(f"{name} (value {gates[name].value:.4f}, threshold "
                            f"{gates[name].threshold:.4f})" for name in failing)
        return f"Rule {rule} ({reason}) → {status}. Failing gates: {details}."
    if rule == 4:
        reason = f"critical drift: KL {drift.kl_divergence:.4f} ≥ tau_critical {drift.tau_critical:.4f}"
    elif rule == 5:
        reasons = [f"impact is {impact}"] if impact in HIGH_IMPACT else []
        if proposal.requires_human_approval:
            reasons.append("human approval is required")
        reason = "; ".join(reasons)
    else:
        reason = "no rule blocks the proposal"
    skipped = "" if "utility" in gates else " (utility skipped)"
    return f"Rule {rule} ({reason}) → {status}. All {len(gates)} evaluated gates passed{skipped}."


def _next_steps(rule: int, failing: tuple[str, ...], impact: str,
                requires_human_approval: bool) -> tuple[str, ...]:
    if rule == 1:
        others = [name for name in failing if name != "complexity"]
        steps = ["Redesign: complexity below the hard floor cannot be overridden"]
        if others:
            steps.append("Also address the failing gates: " + ", ".join(others))
        return tuple(steps)
    if rule == 2:
        return ("Escalate to Risk Lead for review", "Prepare justification document")
    if rule == 3:
        return ("Address the failing gates: " + ", ".join(failing), OVERRIDE_STEP)
    if rule == 4:
        return ("Investigate the drift and recalibrate the thresholds",
                "Re-submit the proposal once drift is back below tau_critical")
    if rule == 5:
        steps = []
        if impact in HIGH_IMPACT:
            steps.append(f"Obtain Risk Lead review: impact is {impact}")
        if requires_human_approval:
            steps.append("Obtain the required human approval before implementation")
        return tuple(steps)
    return ("Proceed with implementation", "Monitor drift metrics post-deployment")


def risk_check(risk_score: float, threshold: float = 0.3) -> dict[str, Any]:
    """Quick check without a posterior (ENGINE.md §6): safe iff risk_score < threshold.

    Both values must be numbers in [0, 1] (a bool is not a number); InputError otherwise.
    """
    values = parse_unit_interval(risk_score=risk_score, threshold=threshold)
    score, limit = values["risk_score"], values["threshold"]
    safe = score < limit
    if safe:
        rationale = f"Risk score {score:.4f} is below the threshold {limit:.4f}, so the action is safe."
    else:
        rationale = (f"Risk score {score:.4f} is at or above the threshold {limit:.4f}, "
                     f"so the action is not safe without review.")
    return {"safe": safe, "risk_score": score, "threshold": limit, "rationale": rationale}
