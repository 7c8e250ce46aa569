"""KL-divergence drift between a current and a baseline sample (ENGINE.md §4)."""

from __future__ import annotations

import math
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
        if kl >= self.tau_critical:
            status, text = CRITICAL, f"≥ tau_critical {self.tau_critical:.4f}: critical drift, pause and recalibrate"
        elif kl >= self.tau_warning:
            status, text = WARNING, f"≥ tau_warning {self.tau_warning:.4f}: drift warning, monitor"
        else:
            status, text = NORMAL, f"< tau_warning {self.tau_warning:.4f}: no significant drift"
        return self._result(status, kl, n_current, n_baseline,
                            f"KL divergence {kl:.4f} nats {text} ({sizes})")

    def _kl_divergence(self, current: np.ndarray) -> float:
        """KL(P ‖ Q) of the smoothed histograms of finite `current` (P) and the baseline (Q)."""
        baseline = self.baseline
        baseline_low, baseline_high = self._baseline_range
        low = min(baseline_low, float(current.min()))
        high = max(baseline_high, float(current.max()))
        bins, value_range = self.bins, (low, high)
        if low == high:  # every value equal: one bin of width 1 around it
            bins, value_range = 1, (low - 0.5, high + 0.5)
        elif not _splittable(low, high, bins):
            # A span too wide for float64, or too narrow for `bins` distinct edges (numpy
            # refuses both): bin the values' relative positions in [0, 1] instead.
            current, baseline = _unit_positions(current, low, high), _unit_positions(baseline, low, high)
            value_range = (0.0, 1.0)
        p = _smoothed_distribution(current, bins, value_range)
        q = _smoothed_distribution(baseline, bins, value_range)
        # Rounding can leave a hair below zero when P ≈ Q; KL itself never is.
        return max(0.0, float(np.sum(p * np.log(p / q))))

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


def _smoothed_distribution(values: np.ndarray, bins: int, value_range: tuple[float, float]) -> np.ndarray:
    counts, _ = np.histogram(values, bins=bins, range=value_range)
    smoothed = counts + JEFFREYS_PSEUDOCOUNT
    return smoothed / smoothed.sum()
