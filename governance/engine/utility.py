"""Utility lower confidence bound and its confidence (ENGINE.md §3.7, §3.8)."""

from __future__ import annotations

import functools
import math
from statistics import NormalDist

from .bayesian import SQRT2


@functools.lru_cache(maxsize=64)
def utility_z(confidence: float) -> float:
    """z = Φ⁻¹(confidence); cached because it depends on the configuration only."""
    return NormalDist().inv_cdf(confidence)


def lower_confidence_bound(mean: float, std_error: float, z: float) -> float:
    """LCB = mean − z·std_error."""
    return mean - z * std_error


def utility_confidence(mean: float, std_error: float, threshold: float, passed: bool) -> float:
    """Φ((mean − θ)/std_error) when passed, 1 − that when failed; 1.0 when std_error = 0
    (the utility is then known exactly). Both sides use erfc so neither tail cancels."""
    if std_error == 0.0:
        return 1.0
    scaled = (mean - threshold) / std_error / SQRT2
    return 0.5 * math.erfc(-scaled if passed else scaled)
