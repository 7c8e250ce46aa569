"""/api/docs (Swagger UI) and /api/redoc load nothing from other hosts: their scripts, styles
and icon are the app's own static files (drf-spectacular-sidecar), served by the app."""

from __future__ import annotations

import re

import pytest
from django.test import Client

ASSET_REFERENCE = re.compile(rb'(?:src|href)="([^"]+)"')


def served(client: Client, path: str) -> bytes:
    response = client.get(path, secure=True)
    assert response.status_code == 200, (path, response.status_code)
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.mark.django_db
@pytest.mark.parametrize(("page", "assets"), [
    ("/api/docs", {"swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css", "favicon-32x32.png"}),
    ("/api/redoc", {"redoc.standalone.js"}),
])
@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "signed-in"])
def test_the_api_docs_reference_only_local_static_files_and_they_are_served(page, assets, signed_in, django_user_model):
    client = Client()
    if signed_in:
        client.force_login(django_user_model.objects.create_user("reader"))
    html = served(client, page)

    assert not re.search(rb"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html, re.IGNORECASE), \
        "the page names another host"
    references = [ref.decode() for ref in ASSET_REFERENCE.findall(html)]
    assert {ref.rsplit("/", 1)[-1] for ref in references} >= assets, references
    for reference in references:
        assert reference.startswith("/static/drf_spectacular_sidecar/"), reference
        assert served(client, reference), reference
    assert b"/api/schema" in html
