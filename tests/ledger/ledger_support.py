"""Helpers for the ledger tests (imported as `ledger_support`): real work made through the
services, the raw SQL an attacker with write access to the database runs, and checks."""

from __future__ import annotations

import importlib

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection

from calibration import services as calibration
from calibration.models import ConfigurationVersion
from governance import services as governance
from governance.engine.inputs import parse_proposal
from ledger.audit import LedgerTally, audit_ledger, verify_ledger
from workflows.machines import Actor
from workflows.roles import RISK_LEAD_GROUP
from workflows.services import actor_for

LEDGER = importlib.import_module("ledger.migrations.0001_initial")
TRANSITIONS = importlib.import_module("workflows.migrations.0005_encrypt_pii")
HALTING = {"proposal_summary": "Raise the leverage cap", "novelty_score": 0.95}


def sql(statement: str, params=()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def lift_triggers(module) -> None:
    """What an attacker with DBA rights does first (rolled back with the test's transaction)."""
    statements = {"sqlite": module.SQLITE_BACKWARD, "postgresql": module.POSTGRES_BACKWARD}[connection.vendor]
    for statement in statements:
        sql(statement)


def halted_proposal():
    """A proposal the gates stop: its review workflow (the 'override' a risk lead signs)."""
    return governance.submit_proposal(parse_proposal(HALTING), actor=Actor("alice", roles=frozenset()))


def risk_leads():
    group = Group.objects.get(name=RISK_LEAD_GROUP)
    users = []
    for name in ("ria", "rob"):
        user = get_user_model().objects.create_user(name)
        user.groups.add(group)
        users.append(user)
    return users


def apply_calibration(proposer, approver, value: float = 0.82) -> ConfigurationVersion:
    """A version made as AEGIS makes them: proposed, approved by another risk lead, applied."""
    proposal = calibration.propose("novelty_threshold", value, "Novelty threshold tuned on last month's data",
                                   actor=actor_for(proposer))
    calibration.approve(proposal.proposal_id, actor=actor_for(approver), comment="Checked")
    return calibration.apply(proposal.proposal_id, actor=actor_for(proposer))


def findings() -> list[str]:
    return [finding.message for finding in verify_ledger()]


def audited() -> tuple[LedgerTally, list[str], str]:
    audit = audit_ledger()
    return audit.tally, [finding.message for finding in audit.findings], audit.anchor_note
