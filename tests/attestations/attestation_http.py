"""A tenant's pipeline talking to the attestation endpoints through Django's test client
(imported as `attestation_http`: tests/ has no packages)."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import timedelta
from typing import Any

from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from governance import services as governance_services
from governance.models import Tier

ARTIFACT = hashlib.sha256(b"release build 42").hexdigest()


def attest_body(**changes: Any) -> dict[str, Any]:
    """A valid POST /attest body for ARTIFACT in production, expiring in an hour."""
    return {"decision_id": str(uuid.uuid4()), "subject_digest_sha256": ARTIFACT, "environment": "production",
            "risk_class": "low", "policy_version": "1.0.0", "repository": "acme/shop",
            "workflow_ref": "acme/shop/.github/workflows/release.yml@refs/heads/main", "run_id": "42",
            "run_attempt": 1, "gate_pass_states": {"risk": "pass"}, "builder_id": "https://github.com/actions/runner",
            "expires_at": (timezone.now() + timedelta(hours=1)).isoformat(), **changes}


class Pipeline:
    """A new tenant (team tier) and its API key; the throttle's counts are cleared first."""

    def __init__(self, name: str = "Pipeline Co"):
        cache.clear()
        self.customer, _, self.key = governance_services.create_customer(name, tier=Tier.objects.get(name="team"))
        self.client = Client()

    def post(self, path: str, body: dict[str, Any]):
        return self.client.post(path, json.dumps(body), content_type="application/json", secure=True,
                                headers={"Authorization": f"Bearer {self.key}"})

    def attest(self, **changes: Any) -> dict[str, Any]:
        """The envelope of a new attestation (asserting the 201)."""
        response = self.post("/attest", attest_body(**changes))
        assert response.status_code == 201, response.content
        return response.json()["envelope"]

    def verify(self, envelope: dict[str, Any], digest: str = ARTIFACT, environment: str = "production"):
        return self.post("/attestations/verify", {"envelope": envelope, "expected_digest": digest,
                                                  "expected_environment": environment})

    def public_keys(self) -> list[dict[str, Any]]:
        """GET /attestations/keys, without the API key (it needs none)."""
        response = Client().get("/attestations/keys", secure=True)
        assert response.status_code == 200, response.content
        return response.json()["keys"]
