"""KL-divergence drift between a current and a baseline sample (ENGINE.md §4), and the
thresholds that a baseline's own no-drift behaviour suggests (its null distribution)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    from .config import AegisConfig

NORMAL, WARNING, CRITICAL, INSUFFICIENT_DATA = "normal", "warning", "critical", "insufficient_data"
ACTIONS = {NORMAL: "none", WARNING: "monitor", CRITICAL: "pause_and_recalibrate",
           INSUFFICIENT_DATA: "none"}
JEFFREYS_PSEUDOCOUNT = 0.5
# The null distribution: how many no-drift sample pairs, and which of their KL percentiles
# become tau_warning and tau_critical (the ~10 % / 1 % alert rates the method aims at).
NULL_REPEATS = 10_000
WARNING_PERCENTILE, CRITICAL_PERCENTILE = 90.0, 99.0
THRESHOLD_DIGITS = 4  # significant digits of a suggested threshold (rounded up)


def classify(kl: float, tau_warning: float, tau_critical: float) -> str:
    """The drift status of a KL divergence: critical at or above tau_critical, warning at
    or above tau_warning, else normal. The one place this rule lives: the daily check,
    the impact preview and the review page's drift history all call it."""
    if kl >= tau_critical:
        return CRITICAL
    if kl >= tau_warning:
        return WARNING
    return NORMAL


@dataclass(frozen=True, slots=True)
class DriftResult:
    """Outcome of one drift check. `kl_divergence` is None when drift was not computed;
    the thresholds used are kept so that messages built later quote the right ones."""

    status: str
    kl_divergence: float | None
    action: str
    message: str
    n_current: int
    n_baseline: int
    tau_warning: float
    tau_critical: float

    @property
    def computed(self) -> bool:
        return self.kl_divergence is not None

    def to_dict(self) -> dict[str, Any]:
        """The API's `drift` object (KL rounded to 4 decimals)."""
        kl = None if self.kl_divergence is None else round(self.kl_divergence, 4)
        return {"status": self.status, "kl_divergence": kl, "action": self.action,
                "message": self.message}


def finite_values(values: ArrayLike) -> np.ndarray:
    """The values as a flat float64 array with NaN and ±inf removed."""
    array = np.asarray(values, dtype=np.float64).ravel()
    finite = np.isfinite(array)
    return array if finite.all() else array[finite]


class DriftMonitor:
    """Compares current samples of a metric with a fixed baseline sample.

    Non-finite values (NaN, ±inf) in either sample are dropped before anything is counted;
    `n_current` and `n_baseline` are the numbers of finite values.
    """

    def __init__(self, baseline: ArrayLike, *, bins: int = 20, min_samples: int = 30,
                 tau_warning: float = 0.3, tau_critical: float = 0.5):
        if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
            raise ValueError(f"bins must be a positive integer, got {bins!r}")
        if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 1:
            raise ValueError(f"min_samples must be a positive integer, got {min_samples!r}")
        if not 0 < tau_warning < tau_critical:
            raise ValueError(f"need 0 < tau_warning < tau_critical, got {tau_warning!r} and {tau_critical!r}")
        self.bins = bins
        self.min_samples = min_samples
        self.tau_warning = float(tau_warning)
        self.tau_critical = float(tau_critical)
        self.baseline = np.array(finite_values(baseline))  # our own copy, kept read-only
        self.baseline.flags.writeable = False
        self._baseline_range = ((float(self.baseline.min()), float(self.baseline.max()))
                                if self.baseline.size else None)

    @classmethod
    def from_config(cls, baseline: ArrayLike, config: "AegisConfig") -> "DriftMonitor":
        return cls(baseline, bins=config.kl_bins, min_samples=config.kl_min_samples,
                   tau_warning=config.tau_warning, tau_critical=config.tau_critical)

    @property
    def n_baseline(self) -> int:
        return int(self.baseline.size)

    def check(self, current: ArrayLike) -> DriftResult:
        """KL(current ‖ baseline) in nats over `bins` equal-width bins spanning both samples,
        with +0.5 per bin (Jeffreys) so that empty bins do not make it infinite."""
        current = finite_values(current)
        n_current, n_baseline = int(current.size), self.n_baseline
        sizes = f"current n={n_current}, baseline n={n_baseline}"
        if min(n_current, n_baseline) < self.min_samples:
            return self._result(INSUFFICIENT_DATA, None, n_current, n_baseline,
                                f"Drift not computed: each sample needs at least {self.min_samples} "
                                f"finite values ({sizes})")
        kl = self._kl_divergence(current)
        status = classify(kl, self.tau_warning, self.tau_critical)
        text = {CRITICAL: f"≥ tau_critical {self.tau_critical:.4f}: critical drift, pause and recalibrate",
                WARNING: f"≥ tau_warning {self.tau_warning:.4f}: drift warning, monitor",
                NORMAL: f"< tau_warning {self.tau_warning:.4f}: no significant drift"}[status]
        return self._result(status, kl, n_current, n_baseline,
                            f"KL divergence {kl:.4f} nats {text} ({sizes})")

    def _kl_divergence(self, current: np.ndarray) -> float:
        """KL(P ‖ Q) of the smoothed histograms of finite `current` (P) and the baseline (Q)."""
        baseline_low, baseline_high = self._baseline_range
        low = min(baseline_low, float(current.min()))
        high = max(baseline_high, float(current.max()))
        p, q = _histograms((current, self.baseline), low, high, self.bins)
        return float(kl_from_counts(p, q))

    def _result(self, status: str, kl: float | None, n_current: int, n_baseline: int,
                message: str) -> DriftResult:
        return DriftResult(status, kl, ACTIONS[status], message, n_current, n_baseline,
                           self.tau_warning, self.tau_critical)


def _splittable(low: float, high: float, bins: int) -> bool:
    """Whether np.histogram can cut [low, high] into `bins` finite, distinct bins."""
    return math.isfinite(high - low) and bool(np.all(np.diff(np.linspace(low, high, bins + 1)) > 0))


def _unit_positions(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """(values − low) / (high − low), with every term halved first so nothing overflows."""
    return (values * 0.5 - low * 0.5) / (high * 0.5 - low * 0.5)


def _histograms(samples: tuple[np.ndarray, ...], low: float, high: float, bins: int) -> list[np.ndarray]:
    """Bin counts of each sample over `bins` equal-width bins spanning [low, high]."""
    value_range = (low, high)
    if low == high:  # every value equal: one bin of width 1 around it
        bins, value_range = 1, (low - 0.5, high + 0.5)
    elif not _splittable(low, high, bins):
        # A span too wide for float64, or too narrow for `bins` distinct edges (numpy
        # refuses both): bin the values' relative positions in [0, 1] instead.
        samples = tuple(_unit_positions(values, low, high) for values in samples)
        value_range = (0.0, 1.0)
    return [np.histogram(values, bins=bins, range=value_range)[0] for values in samples]


def kl_from_counts(current_counts: ArrayLike, baseline_counts: ArrayLike) -> np.ndarray:
    """KL(P ‖ Q) in nats between histograms given as bin counts, along the last axis (one
    KL per row of a 2-D array), each count +0.5 (Jeffreys) so that empty bins do not make
    it infinite."""
    p = _smoothed_distribution(current_counts)
    q = _smoothed_distribution(baseline_counts)
    # Rounding can leave a hair below zero when P ≈ Q; KL itself never is.
    return np.maximum(0.0, np.sum(p * np.log(p / q), axis=-1))


def _smoothed_distribution(counts: ArrayLike) -> np.ndarray:
    smoothed = np.asarray(counts, dtype=np.float64) + JEFFREYS_PSEUDOCOUNT
    return smoothed / smoothed.sum(axis=-1, keepdims=True)


# --- thresholds from the null distribution --------------------------------------------------

@dataclass(frozen=True, slots=True)
class NullThresholds:
    """tau_warning and tau_critical suggested by a baseline's null distribution, with the
    numbers a reviewer needs to check them (the percentiles before rounding up)."""

    tau_warning: float
    tau_critical: float
    warning_percentile_kl: float
    critical_percentile_kl: float
    n_current: int
    n_baseline: int
    bins: int
    repeats: int


def null_kl_distribution(baseline: ArrayLike, n_current: int, *, bins: int, repeats: int = NULL_REPEATS,
                         seed: int | Sequence[int] = 0) -> np.ndarray:
    """`repeats` KL divergences that the daily check would see with no drift at all.

    Each repeat draws, from the baseline's own histogram, a pseudo-baseline of the
    baseline's size and a pseudo-current sample of `n_current` values (the bootstrap of
    both samples, drawn as multinomial bin counts: a resampled value only matters through
    its bin), and measures them with the check's estimator: the same bins over the
    baseline's range, the same smoothing, the same KL. Both samples vary, as they do in
    production: a baseline is itself only a sample of the undrifted behaviour.
    `seed` makes the result reproducible (numpy's SeedSequence: an int or ints)."""
    baseline = finite_values(baseline)
    if baseline.size == 0:
        raise ValueError("the baseline has no finite values")
    if isinstance(n_current, bool) or not isinstance(n_current, (int, np.integer)) or n_current < 1:
        raise ValueError(f"n_current must be a positive integer, got {n_current!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    (counts,) = _histograms((baseline,), float(baseline.min()), float(baseline.max()), bins)
    frequencies = counts / counts.sum()
    rng = np.random.default_rng(seed)
    pseudo_baselines = rng.multinomial(baseline.size, frequencies, size=repeats)
    pseudo_currents = rng.multinomial(int(n_current), frequencies, size=repeats)
    return kl_from_counts(pseudo_currents, pseudo_baselines)


def null_thresholds(baseline: ArrayLike, n_current: int, *, bins: int, repeats: int = NULL_REPEATS,
                    seed: int | Sequence[int] = 0) -> NullThresholds:
    """The 90th and 99th percentiles of `null_kl_distribution` as tau_warning and
    tau_critical, rounded up to THRESHOLD_DIGITS significant digits (never below the
    percentile) and kept positive and strictly ordered."""
    kl = null_kl_distribution(baseline, n_current, bins=bins, repeats=repeats, seed=seed)
    at_warning, at_critical = (float(v) for v in np.percentile(kl, [WARNING_PERCENTILE, CRITICAL_PERCENTILE]))
    smallest = 10.0 ** -THRESHOLD_DIGITS  # a constant baseline: every null KL is 0
    tau_warning = _round_up(max(at_warning, smallest))
    tau_critical = _round_up(max(at_critical, math.nextafter(tau_warning, math.inf)))
    return NullThresholds(tau_warning, tau_critical, at_warning, at_critical, int(n_current),
                          int(finite_values(baseline).size), bins, repeats)


def _round_up(value: float) -> float:
    """`value` (> 0) rounded up to THRESHOLD_DIGITS significant digits."""
    scale = 10.0 ** (THRESHOLD_DIGITS - 1 - math.floor(math.log10(value)))
    return math.ceil(value * scale) / scale
