"""The OpenAPI document and its browsable UI (API.md, "Project-specific API"), and models
that match their migrations."""

from __future__ import annotations

from io import StringIO

import pytest
import yaml
from api_support import ApiClient
from django.core.management import call_command

pytestmark = pytest.mark.django_db

CLIENT_PATHS = ["/health", "/evaluate", "/sandbox/evaluate", "/risk-check", "/customer/profile",
                "/customer/usage", "/customer/usage/{month}", "/customer/keys", "/customer/keys/{key_id}",
                "/customer/decisions", "/customer/decisions/{decision_id}"]


def schema_document() -> dict:
    response = ApiClient().get("/api/schema")
    assert response.status_code == 200, response.content
    return yaml.safe_load(response.content)


def test_the_openapi_document_lists_the_client_endpoints():
    document = schema_document()

    assert document["openapi"].startswith("3.")
    assert document["info"]["title"]
    for path in CLIENT_PATHS:
        assert path in document["paths"], path
    assert "post" in document["paths"]["/evaluate"]
    assert "delete" in document["paths"]["/customer/keys/{key_id}"]
    for path in ("/api/decisions/{decision_id}", "/api/decisions/{decision_id}/override",
                 "/api/decisions/{decision_id}/events/{event}", "/api/decisions/{decision_id}/verify"):
        assert "post" in document["paths"][path] or "get" in document["paths"][path], path


def test_the_openapi_document_describes_api_key_auth_on_keyed_endpoints():
    document = schema_document()

    schemes = document["components"]["securitySchemes"]
    name = next(n for n, s in schemes.items() if s.get("scheme") == "bearer")
    assert {name: []} in document["paths"]["/evaluate"]["post"]["security"]


def test_the_openapi_document_is_served_as_json_on_request():
    response = ApiClient().get("/api/schema", query={"format": "json"})

    assert response.status_code == 200, response.content
    assert "/evaluate" in response.json()["paths"]


def test_the_api_docs_page_answers_200():
    response = ApiClient().get("/api/docs", headers={"Accept": "text/html"})

    assert response.status_code == 200
    assert b"/api/schema" in response.content


def test_models_and_migrations_agree():
    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)
