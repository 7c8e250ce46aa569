"""Helpers of the home page tests (imported as `home_support`; the module name is unique in
the suite because tests/ has no packages): users of each kind and the waiting items made
through the real verbs, as a tenant's integration and the reviewers make them."""

from __future__ import annotations

import itertools
import re
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone

from calibration import services as calibration
from governance import decisions
from governance import services as governance
from governance.engine.inputs import parse_proposal
from governance.models import Decision, Tier
from workflows import services as workflows
from workflows.roles import ROLE_GROUPS, Role

PAUSE = {"proposal_summary": "Move the warehouse sync to hourly", "estimated_impact": "high",
         "risk_baseline": 0.2, "risk_proposed": 0.2, "profit_baseline": 0.3, "profit_proposed": 0.35}
HALT = {"proposal_summary": "Novel payments router", "novelty_score": 0.9}  # overridable
HALT_COMPLEXITY = {"proposal_summary": "Tangled rewrite", "novelty_score": 0.9, "complexity_score": 0.1}

ANONYMOUS, NOT_STAFF, STAFF, RISK_LEAD, RISK_LEAD_2, SECURITY_LEAD, SUPERUSER = (
    "anonymous", "not_staff", "staff", "risk_lead", "risk_lead_2", "security_lead", "superuser")
# kind -> (username, roles, staff, superuser)
USERS = {NOT_STAFF: ("nora", (), False, False), STAFF: ("stan", (), True, False),
         RISK_LEAD: ("rita", (Role.RISK_LEAD,), True, False), RISK_LEAD_2: ("rob", (Role.RISK_LEAD,), True, False),
         SECURITY_LEAD: ("sam", (Role.SECURITY_LEAD,), True, False), SUPERUSER: ("ada", (), True, True)}

_numbers = itertools.count(1)


class SecureClient(Client):
    """The test client over HTTPS (with DEBUG off the settings redirect plain HTTP)."""

    def generic(self, *args, secure=True, **kwargs):
        return super().generic(*args, secure=True, **kwargs)


def make_user(kind: str):
    username, roles, staff, superuser = USERS[kind]
    # no password: tests sign in with force_login, and hashing one costs ~1 s (PBKDF2)
    user = get_user_model().objects.create_user(username, password=None, is_staff=staff, is_superuser=superuser)
    for role in roles:
        user.groups.add(Group.objects.get_or_create(name=ROLE_GROUPS[role])[0])
    return user


def tenant(name: str = "Acme Payments"):
    customer, _key, _plaintext = governance.create_customer(name, tier=Tier.objects.get(name="team"))
    return customer


def decide(inputs: dict, customer) -> Decision:
    """A decision made as the tenant's integration makes it (with its review workflow)."""
    body = governance.evaluate_proposal(governance.CallContext(customer=customer, api_key=None),
                                        parse_proposal(inputs))
    return Decision.objects.get(decision_id=body["decision_id"])


def request_override(decision: Decision, user) -> dict:
    return decisions.request_override(decision.decision_id, actor=workflows.actor_for(user), customer=None,
                                      justification="Launch depends on it; rollback plan in PR 42")


def sign_override(override: dict, user) -> None:
    workflows.fire_event(override["workflow_id"], "approve", actor=workflows.actor_for(user), comment="Reviewed")


def propose_calibration(user, parameter: str = "novelty_threshold", value: float = 0.9):
    return calibration.propose(parameter, value, "Too many false halts on novelty this month",
                               actor=workflows.actor_for(user))


def vote_for(usernames: list[str], customer=None):
    spec = workflows.ConsensusSpec(subject="Adopt the new gate thresholds", reviewers=usernames, quorum=1,
                                   approval_threshold=0.5, deadline=timezone.now() + timedelta(days=2))
    return workflows.start_consensus(spec, actor=workflows.Actor.system("tests"), customer=customer)


def waiting_ids(response) -> list[str]:
    """The workflow ids of the home page's "Waiting for you" rows, in order."""
    assert response.status_code == 200, response.content[:500]
    return [str(row.workflow.workflow_id) for row in response.context["waiting"]]


def nav_count(response) -> int:
    """The count beside the navigation's Home link (0 when no badge is shown)."""
    found = re.search(r'id="nav-waiting-count"[^>]*>(\d+)<', response.content.decode())
    return int(found.group(1)) if found else 0
