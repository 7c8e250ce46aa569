"""Vectorised decisions for many proposals (impact previews, re-evaluation, benchmarks).

`evaluate_batch` gives, row for row, the status, failing gates and confidence that
`pcw_decide` gives one proposal at a time. Columns are 1-D arrays of equal length:

required (float):  risk_baseline, risk_proposed, profit_baseline, profit_proposed,
                   novelty_score, complexity_score, quality_score
optional:          has_zero_subscore (bool) or min_subscore (float, NaN = no subscores)
                       — default: no zero subscore
                   impact (int code of IMPACT_CODES: low 0, medium 1, high 2, critical 3)
                       — default medium
                   requires_human_approval (bool) — default false
                   utility_mean, utility_std_error (float; NaN mean = no utility_result)
                       — default absent
                   drift_critical (bool: the proposal's drift check was critical)
                       — default false

Values must already be valid per ENGINE.md §1 (use parse_proposal or proposals_to_columns);
only the column names, lengths and impact codes are checked here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import erfc as erfc_array

from .bayesian import SQRT2
from .decide import ESCALATE, HALT, HIGH_IMPACT, PAUSE, STATUSES
from .gates import GATE_NAMES, GateEvaluator, gate_evaluator, novelty_logistic
from .inputs import IMPACT_LEVELS

if TYPE_CHECKING:
    from .config import AegisConfig
    from .inputs import ProposalInput

STATUS_CODES: dict[str, int] = {name: code for code, name in enumerate(STATUSES)}
GATE_BITS: dict[str, int] = {name: 1 << bit for bit, name in enumerate(GATE_NAMES)}
IMPACT_CODES: dict[str, int] = {name: code for code, name in enumerate(IMPACT_LEVELS)}
_HIGH_IMPACT_CODE = min(IMPACT_CODES[name] for name in HIGH_IMPACT)

REQUIRED_COLUMNS: tuple[str, ...] = (
    "risk_baseline", "risk_proposed", "profit_baseline", "profit_proposed",
    "novelty_score", "complexity_score", "quality_score",
)
OPTIONAL_COLUMNS: tuple[str, ...] = (
    "has_zero_subscore", "min_subscore", "impact", "requires_human_approval",
    "utility_mean", "utility_std_error", "drift_critical",
)

# Vectorised erfc/exp and the scalar path's math.erfc/math.exp may differ in the last
# bits (≤ ~1e-10 relative). Values this close to a gate threshold are recomputed with the
# scalar function, so that both paths put them on the same side of the threshold.
_TIE_TOLERANCE = 1e-8


@dataclass(frozen=True)
class BatchResult:
    status: np.ndarray  # int8 codes: STATUSES[code]
    failing_gates: np.ndarray  # uint8 bitmask: bit i set = GATE_NAMES[i] failed
    confidence: np.ndarray  # float64, min over the evaluated gates

    def __len__(self) -> int:
        return len(self.status)

    def status_names(self) -> np.ndarray:
        return np.asarray(STATUSES)[self.status]

    def failing_gate_names(self, row: int) -> tuple[str, ...]:
        mask = int(self.failing_gates[row])
        return tuple(name for name in GATE_NAMES if mask & GATE_BITS[name])


def evaluate_batch(columns: Mapping[str, ArrayLike], config: "AegisConfig") -> BatchResult:
    """Decide every row of `columns` (see the module docstring) under `config`."""
    data = _Columns(columns)
    evaluator = gate_evaluator(config)
    failing = np.zeros(data.length, dtype=np.uint8)

    def record(name: str, failed: np.ndarray) -> None:
        np.bitwise_or(failing, np.left_shift(failed.view(np.uint8), GATE_NAMES.index(name)),
                      out=failing)

    risk_failed, confidence = _trigger(
        evaluator, data.floats("risk_proposed"), data.floats("risk_baseline"),
        config.epsilon_R, config.risk_trigger_factor)
    record("risk", risk_failed)
    profit_failed, profit_confidence = _trigger(
        evaluator, data.floats("profit_baseline"), data.floats("profit_proposed"),
        config.epsilon_P, config.profit_trigger_factor)
    record("profit", profit_failed)
    np.minimum(confidence, profit_confidence, out=confidence)

    novelty = data.floats("novelty_score")
    with np.errstate(over="ignore"):
        logistic = np.subtract(novelty, config.novelty_N0)
        logistic *= -config.novelty_k
        np.exp(logistic, out=logistic)
    logistic += 1.0
    np.reciprocal(logistic, out=logistic)
    _align_near_ties(logistic, config.novelty_threshold,
                     lambda i: novelty_logistic(float(novelty[i]), config.novelty_k, config.novelty_N0))
    record("novelty", logistic >= config.novelty_threshold)

    complexity_failed = ~(data.floats("complexity_score") >= config.complexity_floor)
    record("complexity", complexity_failed)
    record("quality", ~(data.floats("quality_score") >= config.quality_min_score) | data.zero_subscore())

    if "utility_mean" in data:
        utility_failed, utility_confidence, present = _utility(
            data.floats("utility_mean"), data.floats("utility_std_error"),
            evaluator.utility_z, config.utility_threshold)
        record("utility", utility_failed)
        np.minimum(confidence, utility_confidence, out=confidence, where=present)

    status = np.zeros(data.length, dtype=np.int8)  # rule 6: proceed
    high_impact = data.impact() >= _HIGH_IMPACT_CODE
    pause = high_impact | data.flag("requires_human_approval") | data.flag("drift_critical")
    status[pause] = STATUS_CODES[PAUSE]  # rules 4 and 5
    other_failed = (failing & ~np.uint8(GATE_BITS["complexity"])) != 0
    status[other_failed] = STATUS_CODES[HALT]  # rule 3
    status[other_failed & high_impact] = STATUS_CODES[ESCALATE]  # rule 2
    status[complexity_failed] = STATUS_CODES[HALT]  # rule 1
    return BatchResult(status, failing, confidence)


def _trigger(evaluator: GateEvaluator, numerator: np.ndarray, denominator: np.ndarray,
             epsilon: float, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Risk or profit gate: (failed, confidence) per row."""
    posterior = evaluator.posterior
    threshold = evaluator.config.trigger_confidence_prob
    ratio = np.maximum(denominator, epsilon)
    np.divide(numerator, ratio, out=ratio)
    probability = posterior.prob_at_least_array(factor, ratio)
    _align_near_ties(probability, threshold,
                     lambda i: posterior.prob_at_least(factor, float(ratio[i])))
    failed = probability > threshold
    confidence = np.subtract(1.0, probability)
    np.copyto(confidence, probability, where=failed)
    return failed, confidence


def _utility(mean: np.ndarray, std_error: np.ndarray, z: float,
             threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Utility gate: (failed, confidence, present) per row; NaN mean = no utility_result."""
    present = ~np.isnan(mean)
    lcb = np.multiply(z, std_error)
    np.subtract(mean, lcb, out=lcb)
    passed = lcb > threshold
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = np.subtract(mean, threshold)
        scaled /= std_error
    scaled /= SQRT2
    np.negative(scaled, out=scaled, where=passed)
    confidence = erfc_array(scaled, out=scaled)
    confidence *= 0.5
    confidence[std_error == 0.0] = 1.0
    return present & ~passed, confidence, present


def _align_near_ties(values: np.ndarray, threshold: float, scalar_value: Callable[[int], float]) -> None:
    """Recompute, with the scalar path's function, the values within a hair of threshold."""
    distance = np.subtract(values, threshold)
    np.abs(distance, out=distance)
    for row in np.flatnonzero(distance <= _TIE_TOLERANCE * threshold):
        values[row] = scalar_value(int(row))


class _Columns:
    """Checked access to the input columns, with the documented defaults."""

    def __init__(self, columns: Mapping[str, ArrayLike]):
        unknown = sorted(set(columns) - set(REQUIRED_COLUMNS) - set(OPTIONAL_COLUMNS))
        missing = [name for name in REQUIRED_COLUMNS if name not in columns]
        if unknown or missing:
            raise ValueError(f"evaluate_batch: missing column(s) {missing}, unknown column(s) {unknown}")
        if ("utility_mean" in columns) != ("utility_std_error" in columns):
            raise ValueError("evaluate_batch: utility_mean and utility_std_error go together")
        self._columns = columns
        lengths = {name: np.shape(column) for name, column in columns.items()}
        self.length = lengths["risk_proposed"][0] if lengths["risk_proposed"] else 0
        wrong = [name for name, shape in lengths.items() if shape != (self.length,)]
        if wrong:
            raise ValueError(f"evaluate_batch: columns must be 1-D of length {self.length}: {wrong}")

    def __contains__(self, name: str) -> bool:
        return name in self._columns

    def floats(self, name: str) -> np.ndarray:
        return np.asarray(self._columns[name], dtype=np.float64)

    def flag(self, name: str) -> np.ndarray:
        if name not in self._columns:
            return np.zeros(self.length, dtype=bool)
        return np.asarray(self._columns[name], dtype=bool)

    def zero_subscore(self) -> np.ndarray:
        if "has_zero_subscore" in self._columns:
            return self.flag("has_zero_subscore")
        if "min_subscore" in self._columns:
            return self.floats("min_subscore") == 0.0
        return np.zeros(self.length, dtype=bool)

    def impact(self) -> np.ndarray:
        if "impact" not in self._columns:
            return np.full(self.length, IMPACT_CODES["medium"], dtype=np.int8)
        codes = np.asarray(self._columns["impact"])
        if codes.dtype.kind not in "iu" or (codes.size and not (
                0 <= codes.min() and codes.max() < len(IMPACT_LEVELS))):
            raise ValueError(f"evaluate_batch: impact must hold integer codes {IMPACT_CODES}")
        return codes


def proposals_to_columns(proposals: Sequence["ProposalInput"]) -> dict[str, np.ndarray]:
    """evaluate_batch columns for parsed proposals (drift_critical is left to the caller)."""
    def column(value: Callable[["ProposalInput"], object], dtype: type) -> np.ndarray:
        return np.fromiter((value(p) for p in proposals), dtype=dtype, count=len(proposals))

    columns = {name: column(lambda p, name=name: getattr(p, name), np.float64)
               for name in REQUIRED_COLUMNS}
    columns["has_zero_subscore"] = column(lambda p: 0.0 in p.quality_subscores, bool)
    columns["impact"] = column(lambda p: IMPACT_CODES[p.estimated_impact], np.int8)
    columns["requires_human_approval"] = column(lambda p: p.requires_human_approval, bool)
    columns["utility_mean"] = column(
        lambda p: p.utility_result.mean if p.utility_result else math.nan, np.float64)
    columns["utility_std_error"] = column(
        lambda p: p.utility_result.std_error if p.utility_result else math.nan, np.float64)
    return columns
