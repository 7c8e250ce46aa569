"""Helpers and fixtures shared by the drift test modules (imported as `test_drift_support`:
tests/ has no packages and this directory may only hold `test_drift_*` modules, so the
helpers live here; the module itself defines no tests).

Fixtures are imported into each module with `from test_drift_support import *`."""

from __future__ import annotations

import itertools
from datetime import date, datetime, time, timezone as dt_timezone
from typing import Iterable

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from scipy import stats

from calibration import services as calibration_services
from calibration import versions
from calibration.models import CalibrationProposal
from governance import decisions as governance_decisions
from governance import services as governance_services
from governance.sealing import decision_digest
from governance.drift import DRIFT_MONITOR_ACTOR
from governance.engine import pcw_decide
from governance.engine.inputs import parse_proposal
from governance.models import Decision, Tier
from governance.services import CallContext
from workflows.machines import Actor
from workflows.roles import RISK_LEAD_GROUP, Role

__all__ = [
    "fresh_config_cache", "make_user", "make_tenant", "RISK", "RISK_2", "NOBODY", "BASELINE_SETTER",
    "normal_grid", "reference_kl", "make_decisions", "noon", "day_start", "set_taus", "drift_proposals",
    "open_drift_proposals", "state_of", "https_client", "drop_append_only_triggers",
]

_numbers = itertools.count(1)

RISK = Actor("rita", id=None, roles=frozenset({Role.RISK_LEAD}))
RISK_2 = Actor("rob", id=None, roles=frozenset({Role.RISK_LEAD}))
NOBODY = Actor("nina", id=None, roles=frozenset())
BASELINE_SETTER = RISK


@pytest.fixture(autouse=True)
def fresh_config_cache():
    """The per-process config cache is keyed by version number; a test database rolled back
    between tests reuses numbers (a version 2 with other taus), so clear it around each test."""
    versions._built.clear()
    yield
    versions._built.clear()


@pytest.fixture
def make_user(db):
    """make_user(name, risk_lead=False, staff=False) -> a user (no password: force_login)."""
    def make(username: str | None = None, *, risk_lead: bool = False, staff: bool = False):
        user = get_user_model().objects.create_user(username or f"drift-user{next(_numbers)}", password=None,
                                                    is_staff=staff)
        if risk_lead:
            user.groups.add(Group.objects.get_or_create(name=RISK_LEAD_GROUP)[0])
        return user
    return make


@pytest.fixture
def make_tenant(db):
    """make_tenant(name) -> a customer on the team tier (with its first API key)."""
    def make(name: str = "Acme"):
        customer, _key, _plaintext = governance_services.create_customer(name, tier=Tier.objects.get(name="team"))
        return customer
    return make


# --- samples ----------------------------------------------------------------------------------

def normal_grid(mean: float, sd: float, n: int) -> np.ndarray:
    """n deterministic values shaped like N(mean, sd): the normal quantiles at (i + ½)/n,
    kept inside [0, 1] (risk_proposed is a probability)."""
    return np.clip(stats.norm.ppf((np.arange(n) + 0.5) / n, mean, sd), 0.0, 1.0)


def reference_kl(current: Iterable[float], baseline: Iterable[float], bins: int = 20) -> float:
    """KL(current ‖ baseline) computed independently of governance.engine.drift: explicit
    equal-width edges over the union range, bin counts by searchsorted, +0.5 per bin
    (Jeffreys), and scipy.stats.entropy (which normalises and uses the natural log)."""
    current = np.asarray(list(current), dtype=float)
    baseline = np.asarray(list(baseline), dtype=float)
    low = min(current.min(), baseline.min())
    high = max(current.max(), baseline.max())
    if low == high:
        return 0.0  # one bin: both distributions put all their mass in it

    def counts(values: np.ndarray) -> np.ndarray:
        edges = np.linspace(low, high, bins + 1)
        index = np.searchsorted(edges, values, side="right") - 1
        index = np.clip(index, 0, bins - 1)  # the maximum belongs to the last bin
        return np.bincount(index, minlength=bins).astype(float)

    return float(stats.entropy(counts(current) + 0.5, counts(baseline) + 0.5))


# --- decisions ----------------------------------------------------------------------------------

def noon(day: date) -> datetime:
    return datetime.combine(day, time(12), tzinfo=dt_timezone.utc)


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=dt_timezone.utc)


def make_decisions(customer, values: Iterable[float], at: datetime | date, *, real: int = 3) -> list[str]:
    """Decisions of `customer` with these risk_proposed values, made at `at` (a datetime, or
    noon UTC of a date). The first `real` go through governance.services.evaluate_proposal
    (the /evaluate path) at `at`; the rest, for speed, are decided by the same engine call
    (`pcw_decide` under the active config) and stored with the same columns and digest in
    one bulk insert. Returns the ids."""
    when = noon(at) if isinstance(at, date) and not isinstance(at, datetime) else at
    values = [float(v) for v in values]
    ctx = CallContext(customer=customer, api_key=None)
    ids = []
    for value in values[:real]:
        body = governance_services.evaluate_proposal(ctx, parse_proposal(_inputs(value)), now=when)
        ids.append(body["decision_id"])
    version, config = versions.active_config()
    rows = []
    for value in values[real:]:
        proposal = parse_proposal(_inputs(value))
        body = pcw_decide(proposal, config, drift=None, config_version=version, now=when).to_dict()
        row = Decision(decision_id=body["decision_id"], customer=customer, created_at=when, status=body["status"],
                       config_version=body["config_version"], response=body,
                       **governance_decisions._decision_columns(proposal, None, body["status"]))
        row.content_hash = decision_digest(row)
        rows.append(row)
        ids.append(body["decision_id"])
    Decision.objects.bulk_create(rows, batch_size=500)
    return [str(i) for i in ids]


def _inputs(value: float) -> dict:
    return {"proposal_summary": "Drift test change", "risk_proposed": value}


# --- configuration ------------------------------------------------------------------------------

def set_taus(**wanted: float):
    """Apply a new configuration version with these taus the way production does it: a risk
    lead proposes, another approves, apply. Returns the new ConfigurationVersion."""
    _, config = versions.active_config()
    changes = {name: value for name, value in wanted.items() if getattr(config, name) != value}
    assert changes, "nothing to change"
    (parameter, value), *rest = changes.items()
    proposal = calibration_services.propose(parameter, value, "Test thresholds", actor=RISK,
                                            companions=dict(rest) or None)
    calibration_services.approve(proposal.proposal_id, actor=RISK_2, comment="ok")
    return calibration_services.apply(proposal.proposal_id, actor=RISK_2)


def drift_proposals():
    """The drift monitor's proposals (proposed_by is encrypted: matched in Python)."""
    ids = [p.pk for p in CalibrationProposal.objects.all() if p.proposed_by == DRIFT_MONITOR_ACTOR]
    return CalibrationProposal.objects.filter(pk__in=ids).select_related("workflow")


def open_drift_proposals():
    return drift_proposals().filter(workflow__current_state__in=calibration_services.OPEN_STATES)


def state_of(proposal) -> str:
    return CalibrationProposal.objects.select_related("workflow").get(pk=proposal.pk).workflow.current_state


# --- HTTP -------------------------------------------------------------------------------------

def https_client(user=None) -> Client:
    """A test client logged in as `user` (or anonymous); pass secure=True on each call (the
    test settings redirect plain http to https)."""
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


# --- the append-only trigger (as tests/workflows/wf_support.py) ------------------------------------

TRANSITIONS = "workflows_workflowtransition"


def drop_append_only_triggers() -> None:
    """What an attacker with DBA rights does first; inside the test's transaction, so the DDL
    is rolled back with it on SQLite and PostgreSQL."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(f"DROP TRIGGER {TRANSITIONS}_no_update")
            cursor.execute(f"DROP TRIGGER {TRANSITIONS}_no_delete")
        elif connection.vendor == "postgresql":
            cursor.execute(f"DROP TRIGGER {TRANSITIONS}_append_only ON {TRANSITIONS}")
        else:  # pragma: no cover
            raise AssertionError(f"no append-only trigger known for {connection.vendor}")
