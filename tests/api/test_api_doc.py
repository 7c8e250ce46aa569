"""docs/api.md names exactly the endpoints the OpenAPI document has (plus /metrics, which
is not part of the API schema), each with its method, so the reference cannot miss a new
endpoint or keep a removed one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from api_support import ApiClient

pytestmark = pytest.mark.django_db

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
OPERATION = re.compile(r"`(%s) (/[^`\s?]*)[^`]*`" % "|".join(METHODS))
ALTERNATIVES = re.compile(r"\{([^{}]*,[^{}]*)\}")
NOT_IN_SCHEMA = {("GET", "/metrics")}


def normalised(path: str) -> str:
    """Parameters compared by position only: `{decision_id}`, `{id}` and `{YYYY-MM}` are alike."""
    return re.sub(r"\{[^{}]*\}", "{}", path)


def expanded(path: str) -> list[str]:
    """`/x/{approve,reject}` names two paths; other braces are parameters."""
    match = ALTERNATIVES.search(path)
    if match is None:
        return [path]
    return [variant for choice in match[1].split(",")
            for variant in expanded(path[:match.start()] + choice.strip() + path[match.end():])]


def documented_operations() -> set[tuple[str, str]]:
    return {(method, normalised(path)) for method, raw in OPERATION.findall(DOC.read_text(encoding="utf-8"))
            for path in expanded(raw)}


def schema_operations() -> set[tuple[str, str]]:
    response = ApiClient().get("/api/schema")
    assert response.status_code == 200, response.content
    paths = yaml.safe_load(response.content)["paths"]
    return {(method.upper(), normalised(path)) for path, operations in paths.items()
            for method in operations if method.upper() in METHODS}


def test_the_api_reference_documents_every_endpoint_and_no_other():
    documented, served = documented_operations(), schema_operations()
    assert served - documented == set(), "endpoints missing from docs/api.md"
    assert documented - served == NOT_IN_SCHEMA, "docs/api.md names endpoints the server does not have"


def test_the_parser_reads_alternatives_and_parameters():
    assert expanded("/api/decisions/{id}/events/{approve,reject}") == [
        "/api/decisions/{id}/events/approve", "/api/decisions/{id}/events/reject"]
    assert normalised("/customer/usage/{YYYY-MM}") == normalised("/customer/usage/{month}")
