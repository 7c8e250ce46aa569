"""With SECURE_SSL_REDIRECT on (the default when DEBUG is off) every plain-HTTP request is
redirected to HTTPS except /health, which load balancers probe over HTTP; behind a proxy
that terminates TLS, SECURE_PROXY_SSL_HEADER makes its X-Forwarded-Proto count."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings


@pytest.mark.django_db
@override_settings(SECURE_SSL_REDIRECT=True)
@pytest.mark.parametrize(("method", "path", "redirected"), [
    ("GET", "/health", False),
    ("HEAD", "/health", False),
    ("GET", "/health/", True),  # only the probe path itself
    ("GET", "/healthz", True),
    ("POST", "/evaluate", True),
    ("GET", "/metrics", True),
    ("GET", "/accounts/login/", True),
    ("GET", "/admin/login/", True),
])
def test_only_health_answers_over_plain_http(method, path, redirected):
    response = Client().generic(method, path)

    if redirected:
        assert response.status_code == 301 and response["Location"] == f"https://testserver{path}"
    else:
        assert response.status_code == 200 and response["Content-Type"].startswith("application/json")


@pytest.mark.django_db
@override_settings(SECURE_SSL_REDIRECT=True, SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"))
@pytest.mark.parametrize(("forwarded_proto", "status"), [("https", 200), ("http", 301), (None, 301)])
def test_behind_a_tls_proxy_its_forwarded_proto_decides(forwarded_proto, status):
    headers = {"X-Forwarded-Proto": forwarded_proto} if forwarded_proto else {}

    assert Client().get("/accounts/login/", headers=headers).status_code == status
