"""Error answers (API.md, "Transport rules"): every client-facing or /api/ path that does not
exist, and every 405 and 500 there, answers the JSON error with DEBUG on and off; the pages
answer HTML 400/403/404/500 pages in the project's look, never Django's debug pages with
DEBUG off. Every 500 is logged with its request id and counted in /metrics."""

from __future__ import annotations

import logging

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client, override_settings
from prometheus_client.parser import text_string_to_metric_families
from serving_support import assert_json_error, assert_project_page

DEBUG_MODES = [pytest.param(False, id="debug-off"), pytest.param(True, id="debug-on")]

UNKNOWN_API_PATHS = [
    ("GET", "/no/such/path"),
    ("POST", "/evaluate/"),  # trailing slash: never redirected, a JSON 404
    ("GET", "/health/deep"),
    ("GET", "/customer/no-such-resource/x"),
    ("DELETE", "/api/no-such-collection"),
    ("GET", "/api/workflows/not-a-uuid/extra/path"),
    ("GET", "/metrics/extra"),
    ("PUT", "/sandbox"),
]


@pytest.fixture
def debug(request):
    with override_settings(DEBUG=request.param):
        yield request.param


def client(**kwargs) -> Client:
    """A client that gets the 500 answer instead of the test re-raising the view's exception."""
    return Client(raise_request_exception=False, **kwargs)


@pytest.mark.django_db
@pytest.mark.parametrize("debug", DEBUG_MODES, indirect=True)
@pytest.mark.parametrize(("method", "path"), UNKNOWN_API_PATHS)
def test_unknown_client_and_api_paths_answer_a_json_404(debug, method, path):
    response = client().generic(method, path, "", content_type="application/json", secure=True)

    body = assert_json_error(response, 404, "not_found")
    assert body["error"] == f"No such endpoint: {path}"


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/workflows/no/such/page/", "/calibration/no-such-page/",
                                  "/accounts/no-such-page/", "/static/no-such-file.css"])
def test_unknown_pages_answer_the_project_404_page_not_the_debug_url_list(path):
    response = client().get(path, secure=True)

    assert_project_page(response, 404, b"Page not found (404)")
    assert path.encode() in response.content


@pytest.mark.django_db
@pytest.mark.parametrize("debug", DEBUG_MODES, indirect=True)
@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("PUT", "/sandbox/evaluate", "POST"),    # a DRF view
    ("POST", "/health", "GET"),
    ("DELETE", "/api/schema", "GET"),
    ("POST", "/api/test-get-only", "GET"),  # a plain Django view: its own 405 is an empty HTML answer
])
@pytest.mark.urls("serving_urls")
def test_a_wrong_method_on_an_api_path_is_a_json_405_naming_the_allowed_ones(debug, method, path, allowed):
    response = client().generic(method, path, "", content_type="application/json", secure=True)

    body = assert_json_error(response, 405, "method_not_allowed")
    assert method in body["error"]
    assert allowed in response["Allow"]


def server_errors_counted(exception: str) -> float:
    """aegis_server_errors_total{exception=…} as /metrics reports it (the test client is loopback)."""
    text = Client().get("/metrics", secure=True).content.decode()
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "aegis_server_errors_total" and sample.labels.get("exception") == exception)


@pytest.mark.django_db
@pytest.mark.parametrize("debug", DEBUG_MODES, indirect=True)
@pytest.mark.parametrize("path", ["/api/test-failure/drf", "/api/test-failure/plain"])
@pytest.mark.urls("serving_urls")
def test_a_server_error_on_an_api_path_is_a_json_500_logged_with_its_request_id_and_counted(
        debug, path, caplog):
    before = server_errors_counted("ServerFault")
    with caplog.at_level(logging.ERROR, logger="aegis.server_errors"):
        response = client().get(path, secure=True, headers={"Content-Type": "application/json"})

    body = assert_json_error(response, 500, "internal_error")
    assert body["error"] == "Internal server error"
    assert b"the plain view failed" not in response.content and b"the DRF view failed" not in response.content
    [record] = [r for r in caplog.records if r.name == "aegis.server_errors"]
    assert record.getMessage() == f"Server error {body['request_id']} on GET {path}: ServerFault"
    assert record.exc_info[0].__name__ == "ServerFault"
    assert server_errors_counted("ServerFault") == before + 1


@pytest.mark.django_db
@pytest.mark.urls("serving_urls")
def test_a_server_error_on_a_page_is_the_project_500_page_logged_and_counted(caplog):
    before = server_errors_counted("ServerFault")
    with caplog.at_level(logging.ERROR, logger="aegis.server_errors"):
        response = client().get("/workflows/test-failure/", secure=True)

    assert_project_page(response, 500, b"Something went wrong on the server (500)")
    assert b"the plain view failed" not in response.content
    [record] = [r for r in caplog.records if r.name == "aegis.server_errors"]
    assert record.getMessage() == (f"Server error {response['X-AEGIS-Request-Id']} on GET /workflows/test-failure/: "
                                   "ServerFault")
    assert server_errors_counted("ServerFault") == before + 1


@pytest.mark.django_db
@pytest.mark.urls("serving_urls")
def test_with_debug_on_a_page_error_shows_the_developer_page_and_is_still_logged(caplog, settings):
    settings.DEBUG = True
    with caplog.at_level(logging.ERROR, logger="aegis.server_errors"):
        response = client().get("/workflows/test-failure/", secure=True)

    assert response.status_code == 500 and b"ServerFault" in response.content  # Django's technical page
    assert [r.name for r in caplog.records].count("aegis.server_errors") == 1


ANONYMOUS, NO_PERMISSION, PERMISSION = "anonymous", "no permission", "permission"


@pytest.mark.django_db
@pytest.mark.parametrize("who", [ANONYMOUS, NO_PERMISSION, PERMISSION])
def test_a_page_refused_for_lack_of_permission_is_the_project_403_page(who):
    browser = client()
    if who != ANONYMOUS:
        user = User.objects.create_user("reader", password="x")
        if who == PERMISSION:
            user.user_permissions.add(Permission.objects.get(codename="view_telemetryevent"))
        browser.force_login(user)

    response = browser.get("/telemetry/", secure=True)

    if who == ANONYMOUS:
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    elif who == NO_PERMISSION:
        assert_project_page(response, 403, b"Not allowed (403)")
        assert b">Log out</button>" in response.content  # rendered with the signed-in user's header
    else:
        assert response.status_code == 200


@pytest.mark.django_db
def test_a_page_request_for_a_host_not_allowed_is_the_project_400_page():
    response = client().get("/workflows/", secure=True, HTTP_HOST="attacker.example")

    assert_project_page(response, 400, b"Bad request (400)")


@pytest.mark.django_db
def test_an_api_request_for_a_host_not_allowed_is_a_json_400():
    response = client().get("/health", secure=True, HTTP_HOST="attacker.example")

    assert_json_error(response, 400, "bad_request")


@pytest.mark.django_db
@pytest.mark.parametrize(("path", "is_json"), [("/accounts/login/", False), ("/api/config", True)])
def test_a_failed_csrf_check_is_the_project_page_or_json_on_api_paths(path, is_json):
    user = User.objects.create_user("alice", password="x")
    browser = Client(enforce_csrf_checks=True, raise_request_exception=False)
    browser.force_login(user)

    response = browser.post(path, {}, secure=True)

    if is_json:
        assert_json_error(response, 403, "forbidden")
    else:
        assert_project_page(response, 403, b"The form could not be checked (403)")
