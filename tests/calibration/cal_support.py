"""Helpers shared by the calibration test modules (imported as `cal_support`; the name is
unique in the suite because tests/ has no packages)."""

from __future__ import annotations

import importlib
import json
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.test import Client

from calibration import services
from calibration.models import CalibrationProposal, ConfigurationVersion
from calibration.versions import content_hash
from governance.engine import AegisConfig
from governance.models import Tier
from workflows.persistence.durable import DurableWorkflowEngine
from workflows.persistence.models import WorkflowTransition
from workflows.roles import RISK_LEAD_GROUP
from workflows.services import actor_for

# A valid new value for each of the 16 calibratable parameters (contract defaults in the
# comments), respecting each rule and tau_warning < tau_critical against the defaults.
VALID_CHANGES: dict[str, float] = {
    "epsilon_R": 0.02,  # 0.01, > 0
    "epsilon_P": 0.05,  # 0.01, > 0
    "risk_trigger_factor": 2.5,  # 2.0, > 0
    "profit_trigger_factor": 3.0,  # 2.0, > 0
    "trigger_confidence_prob": 0.99,  # 0.95, in (0, 1)
    "novelty_threshold": 0.9,  # 0.8, in (0, 1)
    "complexity_floor": 0.6,  # 0.5, in [0, 1]
    "quality_min_score": 0.75,  # 0.7, in [0, 1]
    "utility_threshold": -0.25,  # 0.0, finite
    "novelty_N0": 0.65,  # 0.7, in [0, 1]
    "novelty_k": 12.0,  # 10.0, > 0
    "tau_warning": 0.35,  # 0.3, > 0 and < tau_critical 0.5
    "tau_critical": 0.45,  # 0.5, > tau_warning 0.3
    "prior_mean": 0.1,  # 0.0, finite
    "prior_std": 2.0,  # 1.0, > 0
    "likelihood_std": 0.25,  # 0.5, > 0
}

DEFAULT_TIERS = importlib.import_module("governance.migrations.0002_default_tiers").TIERS
JUSTIFICATION = "Sustained drift above the current threshold over the last month"


# --- the data migrations' rows ------------------------------------------------------------

def ensure_seed() -> None:
    """What the data migrations create, re-created if a transactional test flushed it:
    configuration v1 from the contract, the Risk Lead group with its permissions, the
    `drift-monitor` system actor and the default tiers."""
    if not ConfigurationVersion.objects.exists():
        parameters = AegisConfig.default().to_dict()
        ConfigurationVersion.objects.create(version=1, parameters=parameters, content_hash=content_hash(parameters),
                                            source="schema_default", source_ref="interface-contract",
                                            author="system")
    group, _ = Group.objects.get_or_create(name=RISK_LEAD_GROUP)
    wanted = ["approve_calibrationproposal", "view_calibrationproposal", "view_configurationversion"]
    group.permissions.add(*Permission.objects.filter(content_type__app_label="calibration", codename__in=wanted))
    for name, display, monthly, rate, keys, features in DEFAULT_TIERS:
        Tier.objects.get_or_create(name=name, defaults={
            "display_name": display, "monthly_evaluations": monthly, "rate_per_minute": rate,
            "max_keys": keys, "features": features})


def make_user(username: str, *, risk_lead: bool = False, **extra):
    # No password: hashing one costs ~0.5 s, and the tests log in with force_login.
    user = get_user_model().objects.create_user(username, **extra)
    if risk_lead:
        user.groups.add(Group.objects.get(name=RISK_LEAD_GROUP))
    return user


# --- HTTP ---------------------------------------------------------------------------------

class Browser:
    """A logged-in (or anonymous) Django test client that speaks HTTPS (production
    settings redirect plain http) and JSON for the API."""

    def __init__(self, user=None, **headers: str):
        self.client = Client()
        self.headers = headers
        if user is not None:
            self.client.force_login(user)

    def get(self, path: str, **query):
        return self.client.get(path, query, secure=True, headers=self.headers)

    def post_form(self, path: str, data: dict[str, Any]):
        return self.client.post(path, data, secure=True, headers=self.headers)

    def post_json(self, path: str, body: Any = None, *, raw: str | None = None):
        data = raw if raw is not None else ("" if body is None else json.dumps(body))
        return self.client.post(path, data, content_type="application/json", secure=True, headers=self.headers)


def messages_of(response) -> list[str]:
    from django.contrib.messages import get_messages

    return [str(m) for m in get_messages(response.wsgi_request)]


# --- proposals ----------------------------------------------------------------------------

def propose(user, parameter: str = "novelty_threshold", value: float = 0.9, justification: str = JUSTIFICATION):
    return services.propose(parameter, value, justification, actor=actor_for(user))


def approved(proposer, approver, parameter: str = "novelty_threshold", value: float = 0.9):
    proposal = propose(proposer, parameter, value)
    return services.approve(proposal.proposal_id, actor=actor_for(approver), comment="Looks right")


def state_of(proposal) -> str:
    return CalibrationProposal.objects.select_related("workflow").get(pk=proposal.pk).workflow.current_state


def events_of(proposal) -> list[str]:
    return [payload["event"] for payload in WorkflowTransition.objects.filter(
        workflow__calibration_proposal__pk=proposal.pk).order_by("seq").values_list("payload", flat=True)]


def assert_chains_valid() -> None:
    engine = DurableWorkflowEngine()
    for proposal in CalibrationProposal.objects.select_related("workflow"):
        valid, message = engine.verify_audit_chain(proposal.workflow.workflow_id)
        assert valid, (proposal.parameter, message)


def latest_version() -> ConfigurationVersion:
    return ConfigurationVersion.objects.order_by("-version").first()


# --- concurrency --------------------------------------------------------------------------

def race(*calls: Callable[[], Any], timeout: float = 60) -> list[tuple[str, Any]]:
    """Run the calls in threads released together; [("ok", result) | ("error", exc)]."""
    barrier = threading.Barrier(len(calls))
    results: list[tuple[str, Any]] = [("error", RuntimeError("thread never finished"))] * len(calls)

    def run(index: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = ("ok", call())
        except BaseException as exc:  # noqa: BLE001 — returned to the test
            results[index] = ("error", exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck (deadlock?)"
    return results


@contextmanager
def concurrency_capable_database(directory):
    """Where threads contend for the database as they would in production.

    On PostgreSQL that is the test database itself. Django's SQLite test database is a
    shared-cache in-memory database in which a second writer gets SQLITE_LOCKED at once
    instead of waiting out the busy timeout, which a file database (what SQLite
    deployments use) never does; so on SQLite the test database is copied to a file for the
    duration, with the production settings (`transaction_mode` IMMEDIATE, `timeout`).
    """
    memory = connections[DEFAULT_DB_ALIAS]
    if memory.vendor != "sqlite" or not memory.is_in_memory_db():
        yield
        return
    memory.ensure_connection()
    path = Path(directory) / "calibration-concurrency.sqlite3"
    target = sqlite3.connect(path)
    memory.connection.backup(target)
    target.close()
    settings_dict = memory.settings_dict  # shared with every thread's new connection
    original_name = settings_dict["NAME"]
    settings_dict["NAME"] = str(path)
    file_backed = connections.create_connection(DEFAULT_DB_ALIAS)
    connections[DEFAULT_DB_ALIAS] = file_backed
    try:
        yield
    finally:
        file_backed.close()
        settings_dict["NAME"] = original_name
        connections[DEFAULT_DB_ALIAS] = memory
