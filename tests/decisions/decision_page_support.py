"""Helpers shared by the decision page tests (imported as `decision_page_support`; the
module name is unique in the suite because tests/ has no packages)."""

from __future__ import annotations

import itertools
import re
from datetime import datetime, timezone

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from workflows.roles import ROLE_GROUPS, Role

# Engine inputs and what they lead to (halt reviews open "rejected", pause/escalate "in review").
HALT = {"proposal_summary": "Novel payments router", "novelty_score": 0.9}  # overridable
HALT_COMPLEXITY = {"proposal_summary": "Tangled rewrite", "novelty_score": 0.9, "complexity_score": 0.1}
ESCALATE = {"proposal_summary": "Novel and big", "novelty_score": 0.9, "estimated_impact": "high"}
PAUSE = {"proposal_summary": "Bigger change", "estimated_impact": "high"}
PROCEED = {"proposal_summary": "Cache the rate table"}

ANONYMOUS, NOT_STAFF, STAFF, RISK_LEAD, SECURITY_LEAD = "anonymous", "not_staff", "staff", "risk_lead", "security_lead"
KINDS = [ANONYMOUS, NOT_STAFF, STAFF, RISK_LEAD, SECURITY_LEAD]
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)

_numbers = itertools.count(1)


class SecureClient(Client):
    """The test client over HTTPS."""

    def generic(self, *args, secure=True, **kwargs):
        return super().generic(*args, secure=True, **kwargs)


def make_user(username: str | None = None, *roles: Role, staff: bool = True):
    # no password: tests sign in with force_login, and hashing one costs ~1 s (PBKDF2)
    user = get_user_model().objects.create_user(username or f"user{next(_numbers)}", password=None, is_staff=staff)
    for role in roles:
        user.groups.add(Group.objects.get_or_create(name=ROLE_GROUPS[role])[0])
    return user


USERS = {NOT_STAFF: ("nora", (), False), STAFF: ("stan", (), True), RISK_LEAD: ("rita", (Role.RISK_LEAD,), True),
         SECURITY_LEAD: ("sam", (Role.SECURITY_LEAD,), True)}


def page(decision) -> str:
    return f"/decisions/{decision.decision_id}/"


def event_url(decision, event: str) -> str:
    return f"/decisions/{decision.decision_id}/events/{event}/"


def override_url(decision) -> str:
    return f"/decisions/{decision.decision_id}/override/"


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def offered(response) -> list[str]:
    """The actions a decision page offers (its forms' data-event), in page order."""
    assert response.status_code == 200, response.content[:500]
    return re.findall(r'<form method="post" action="/decisions/[^"]+" data-event="([a-z_]+)"', response.content.decode())


def listed(response) -> list[str]:
    """The decision ids of a list page's rows, in order."""
    assert response.status_code == 200, response.content[:500]
    return [str(row["id"]) for row in response.context["rows"]]
