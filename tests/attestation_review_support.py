"""Attestations made the way a pipeline makes them (attestations.services.issue_attestation),
for the tests of the reviewers' side: pages, admin, audit verification (imported as
`attestation_review_support`; tests/ is on sys.path for every test module)."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta

from django.test import Client
from django.utils import timezone

from attestations import services
from attestations.models import Attestation
from governance import services as governance_services
from governance.engine.inputs import parse_proposal
from governance.models import Customer, Decision, Tier
from workflows.roles import Role

ANONYMOUS, STAFF, RISK_LEAD, SECURITY_LEAD = "anonymous", "staff_without_permission", "risk_lead", "security_lead"
ROLES = {STAFF: (), RISK_LEAD: (Role.RISK_LEAD,), SECURITY_LEAD: (Role.SECURITY_LEAD,)}  # all staff
PROCEED = {"proposal_summary": "Cache the rate table"}
WORKFLOW_REF = "acme/payments/.github/workflows/ship.yml@refs/heads/main"


class SecureClient(Client):
    """The test client over HTTPS (the test settings redirect plain http)."""

    def generic(self, *args, secure=True, **kwargs):
        return super().generic(*args, secure=True, **kwargs)


def make_tenant(name: str) -> Customer:
    customer, _key, _plaintext = governance_services.create_customer(name, tier=Tier.objects.get(name="team"))
    return customer


def decide(customer: Customer, inputs: dict | None = None) -> Decision:
    """A decision made through the tenant's integration (POST /evaluate's service)."""
    body = governance_services.evaluate_proposal(governance_services.CallContext(customer=customer, api_key=None),
                                                 parse_proposal(inputs or PROCEED))
    return Decision.objects.get(decision_id=body["decision_id"])


def attest(customer: Customer, *, decision: Decision | None = None, risk_class: str = "medium",
           environment: str = "production", hours: float = 2, now: datetime | None = None,
           artifact: str = "payments-api-1.4.0.tar.gz") -> Attestation:
    """A stored attestation of `artifact`, naming `decision` (its gate results claimed as
    they are) when given, expiring `hours` after `now`."""
    now = now or timezone.now()
    gates = services.decision_gate_states(decision) if decision is not None else {"risk": "pass"}
    data = {
        "decision_id": str(uuid.uuid4()), "subject_digest_sha256": hashlib.sha256(artifact.encode()).hexdigest(),
        "environment": environment, "risk_class": risk_class, "policy_version": "aegis-policy-v1",
        "repository": "acme/payments", "workflow_ref": WORKFLOW_REF, "run_id": "9137", "run_attempt": 2,
        "gate_pass_states": gates, "builder_id": "https://github.com/actions/runner",
        "expires_at": (now + timedelta(hours=hours)).isoformat(), "external_parameters": {"ref": "main"},
        "subject_name": artifact,
    }
    if decision is not None:
        data["aegis_evaluate_decision_id"] = str(decision.decision_id)
    _status, body = services.issue_attestation(customer, data, now=now)
    return Attestation.objects.get(decision_id=body["decision_id"])
