"""Shared fixtures for the engine tests (pure Python: no database, no Django)."""

import pytest

from governance.engine import AegisConfig, ProposalInput


@pytest.fixture
def config() -> AegisConfig:
    return AegisConfig.default()


@pytest.fixture
def client_proposal():
    """Factory for ENGINE.md §7 example A (the official client's defaults), with changes."""
    def make(**changes) -> ProposalInput:
        values = dict(proposal_summary="Add Redis caching layer to reduce API latency",
                      risk_baseline=0.02, risk_proposed=0.05, profit_baseline=0.98,
                      profit_proposed=0.98, novelty_score=0.75, complexity_score=0.8,
                      quality_score=0.85, estimated_impact="medium")
        values.update(changes)
        return ProposalInput(**values)
    return make
