"""Helpers for the production-serving tests (imported as `serving_support`)."""

from __future__ import annotations

import json

PAGE_LOOK = b'<span class="brand">AEGIS</span>'  # templates/base.html's header


def assert_json_error(response, status: int, code: str) -> dict:
    """A JSON error as API.md says: `{error, code, request_id}`, the id also in the header."""
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = json.loads(response.content)
    assert set(body) == {"error", "code", "request_id"}, body
    assert body["code"] == code and body["error"], body
    assert body["request_id"] == response["X-AEGIS-Request-Id"] and body["request_id"].startswith("req_")
    return body


def assert_project_page(response, status: int, heading: bytes) -> None:
    """An HTML page in the project's look, never Django's debug page."""
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("text/html"), response["Content-Type"]
    assert PAGE_LOOK in response.content and heading in response.content, response.content[:500]
    for debug_marker in (b"URLconf", b"Traceback", b"DEBUG = True"):
        assert debug_marker not in response.content
