"""The AEGIS decision engine: pure Python, no Django import (ENGINE.md)."""

from .batch import (
    GATE_BITS,
    IMPACT_CODES,
    STATUS_CODES,
    BatchResult,
    evaluate_batch,
    proposals_to_columns,
)
from .bayesian import BayesianPosterior
from .config import CALIBRATABLE_PARAMETERS, AegisConfig, ConfigError, ConfigIssue
from .decide import STATUSES, Decision, deciding_rule, pcw_decide, risk_check
from .drift import DriftMonitor, DriftResult, NullThresholds, classify, null_thresholds
from .gates import GATE_NAMES, GateEvaluator, GateResult, evaluate_gates, gate_evaluator
from .inputs import INPUT_ALIASES, InputError, ProposalInput, UtilityResult, parse_proposal
from .utility import lower_confidence_bound, utility_confidence, utility_z

__all__ = [
    "AegisConfig", "CALIBRATABLE_PARAMETERS", "ConfigError", "ConfigIssue",
    "BayesianPosterior",
    "ProposalInput", "UtilityResult", "InputError", "parse_proposal", "INPUT_ALIASES",
    "GateResult", "GateEvaluator", "gate_evaluator", "evaluate_gates", "GATE_NAMES",
    "lower_confidence_bound", "utility_confidence", "utility_z",
    "DriftMonitor", "DriftResult", "NullThresholds", "classify", "null_thresholds",
    "Decision", "pcw_decide", "deciding_rule", "risk_check", "STATUSES",
    "BatchResult", "evaluate_batch", "proposals_to_columns", "STATUS_CODES", "GATE_BITS",
    "IMPACT_CODES",
]
