"""Helpers shared by the API test modules (imported as `api_support`; the module name is
unique in the suite because tests/ has no packages)."""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.test import Client

from governance.models import ApiKey, Customer, Tier

DEFAULT_TIERS = importlib.import_module("governance.migrations.0002_default_tiers").TIERS

# ENGINE.md §7 example A: the official client's defaults.
EXAMPLE_A: dict[str, Any] = {
    "proposal_summary": "Add Redis caching layer to reduce API latency",
    "estimated_impact": "medium",
    "risk_baseline": 0.02,
    "risk_proposed": 0.05,
    "profit_baseline": 0.98,
    "profit_proposed": 0.98,
    "novelty_score": 0.75,
    "complexity_score": 0.8,
    "quality_score": 0.85,
}


def ensure_default_tiers() -> None:
    """The data migration's tiers. Transactional tests flush the database afterwards, so
    a later test must not rely on the migration's rows still being there."""
    for name, display, monthly, rate, keys, features in DEFAULT_TIERS:
        Tier.objects.get_or_create(name=name, defaults={
            "display_name": display, "monthly_evaluations": monthly, "rate_per_minute": rate,
            "max_keys": keys, "features": features})


@dataclass
class Tenant:
    customer: Customer
    key: ApiKey
    plaintext: str

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.plaintext}"}


class ApiClient:
    """Requests shaped like the official client's: HTTPS (production settings redirect
    plain http), `Content-Type: application/json` on every request including GET and
    DELETE, a JSON body only on POST."""

    def __init__(self, key: str | None = None, **headers: str):
        self.client = Client()
        self.headers = dict(headers)
        if key is not None:
            self.headers["Authorization"] = f"Bearer {key}"

    def request(self, method: str, path: str, body: Any = None, *, raw: str | bytes | None = None,
                headers: dict[str, str] | None = None, query: dict | None = None, **extra):
        all_headers = {**self.headers, **(headers or {})}
        data = raw if raw is not None else ("" if body is None else json.dumps(body))
        return self.client.generic(method, path, data, content_type="application/json", secure=True,
                                   headers=all_headers, query_params=query, **extra)

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, body=None, **kwargs):
        return self.request("POST", path, body, **kwargs)

    def delete(self, path, **kwargs):
        return self.request("DELETE", path, **kwargs)



def assert_json_error(response, status: int) -> dict:
    """The error shape of API.md: a JSON object with `error`, `code` and `request_id` (the
    response's X-AEGIS-Request-Id), never DRF's bare `detail`."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body, dict)
    assert isinstance(body.get("error"), str) and body["error"]
    assert isinstance(body.get("code"), str) and body["code"]
    assert body.get("request_id") == response["X-AEGIS-Request-Id"]
    assert "detail" not in body
    return body


def tables_containing(needle: str) -> list[str]:
    """The tables with a row holding `needle`, read as the database returns them (no ORM
    decoding, so an encrypted column does not count)."""
    found = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                text = repr([bytes(value) if isinstance(value, memoryview) else value for value in row])
                if needle in text:
                    found.append(table)
                    break
    return found
