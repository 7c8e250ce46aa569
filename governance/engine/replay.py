"""A decision's inputs packed as one little-endian float64 vector, so that millions of
stored decisions can be read back as a single array and re-decided with `evaluate_batch`
(calibration impact previews) without decoding a row per decision.

Layout (REPLAY_FIELDS, in order): the batch engine's input columns, the drift KL the
decision saw (NaN when drift was not computed; re-judged against the replayed config's
tau_critical) and the status code the decision got.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .batch import IMPACT_CODES, STATUS_CODES

if TYPE_CHECKING:
    from .config import AegisConfig
    from .inputs import ProposalInput

REPLAY_FIELDS: tuple[str, ...] = (
    "risk_baseline", "risk_proposed", "profit_baseline", "profit_proposed",
    "novelty_score", "complexity_score", "quality_score", "has_zero_subscore", "impact",
    "requires_human_approval", "utility_mean", "utility_std_error", "drift_kl", "status",
)
REPLAY_DTYPE = np.dtype("<f8")
REPLAY_WIDTH = len(REPLAY_FIELDS)
REPLAY_BYTES = REPLAY_WIDTH * REPLAY_DTYPE.itemsize


def pack_replay(proposal: "ProposalInput", status: str, drift_kl: float | None) -> bytes:
    utility = proposal.utility_result
    values = (
        proposal.risk_baseline, proposal.risk_proposed, proposal.profit_baseline, proposal.profit_proposed,
        proposal.novelty_score, proposal.complexity_score, proposal.quality_score,
        float(any(s == 0.0 for s in proposal.quality_subscores)), IMPACT_CODES[proposal.estimated_impact],
        float(proposal.requires_human_approval),
        utility.mean if utility else math.nan, utility.std_error if utility else math.nan,
        math.nan if drift_kl is None else drift_kl, STATUS_CODES[status],
    )
    return np.asarray(values, dtype=REPLAY_DTYPE).tobytes()


def unpack_replay(packed: bytes, config: "AegisConfig") -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(batch columns for `config`, original status codes) from concatenated vectors."""
    if len(packed) % REPLAY_BYTES:
        raise ValueError(f"replay data is {len(packed)} bytes, not a multiple of {REPLAY_BYTES}")
    matrix = np.frombuffer(packed, dtype=REPLAY_DTYPE).reshape(-1, REPLAY_WIDTH)
    column = {name: matrix[:, index] for index, name in enumerate(REPLAY_FIELDS)}
    columns = {name: np.ascontiguousarray(column[name]) for name in REPLAY_FIELDS[:7]}
    columns["has_zero_subscore"] = column["has_zero_subscore"] != 0
    columns["impact"] = column["impact"].astype(np.int8)
    columns["requires_human_approval"] = column["requires_human_approval"] != 0
    columns["utility_mean"] = np.ascontiguousarray(column["utility_mean"])
    columns["utility_std_error"] = np.ascontiguousarray(column["utility_std_error"])
    kl = column["drift_kl"]
    with np.errstate(invalid="ignore"):
        columns["drift_critical"] = kl >= config.tau_critical  # NaN compares False
    return columns, column["status"].astype(np.int8)
