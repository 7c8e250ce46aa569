"""Sign-in protection (django-axes): AXES_FAILURE_LIMIT failed sign-ins for one username, or
from one client address, lock it out — on the sign-in page, the admin's and HTTP Basic on
/api/ — even with the right password, until AXES_COOLOFF_MINUTES have passed since the
last failure or an administrator unlocks it (the admin, or `manage.py axes_reset_*`)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.test import Client, RequestFactory, override_settings
from django.utils import timezone

from governance.login_protection import client_address

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"
WRONG = "not the password"
LIMIT = settings.AXES_FAILURE_LIMIT


def sign_in_page(path: str):
    def attempt(username: str, password: str, address: str = "198.51.100.7"):
        client = Client(REMOTE_ADDR=address)
        response = client.post(path, {"username": username, "password": password}, secure=True)
        signed_in = "_auth_user_id" in client.session
        return response, signed_in
    return attempt


def basic_auth(username: str, password: str, address: str = "198.51.100.7"):
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    response = Client(REMOTE_ADDR=address).get("/api/config", secure=True, headers={
        "Authorization": f"Basic {token}", "Content-Type": "application/json"})
    return response, response.status_code == 200


SURFACES = {
    "sign-in page": sign_in_page("/accounts/login/"),
    "admin sign-in": sign_in_page("/admin/login/?next=/admin/"),
    "HTTP Basic on /api/": basic_auth,
}


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Dozens of sign-ins per test: a cheap hasher keeps them quick (what is tested is the count)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(params=list(SURFACES))
def attempt(request):
    return SURFACES[request.param]


@pytest.fixture
def alice(db):
    return User.objects.create_user("alice", password=PASSWORD, is_staff=True)


@pytest.fixture
def bob(db):
    return User.objects.create_user("bob", password=PASSWORD, is_staff=True)


def assert_locked_out(response) -> None:
    assert response.status_code == 429, (response.status_code, response.content[:300])
    if response["Content-Type"].startswith("application/json"):
        body = json.loads(response.content)
        assert body["code"] == "locked_out" and body["request_id"] == response["X-AEGIS-Request-Id"]
        assert f"Too many failed sign-ins ({LIMIT})" in body["error"] and "15 minutes" in body["error"]
    else:
        assert b'<span class="brand">AEGIS</span>' in response.content  # the project's look
        assert b"Sign-in blocked" in response.content and b"15 minutes" in response.content


def test_the_documented_defaults_are_in_force():
    assert (settings.AXES_FAILURE_LIMIT, settings.AXES_COOLOFF_TIME) == (5, timedelta(minutes=15))
    readme = (ROOT / "README.md").read_text()
    assert "| `AXES_FAILURE_LIMIT` | 5 |" in readme and "| `AXES_COOLOFF_MINUTES` | 15 |" in readme


def test_a_wrong_password_below_the_limit_is_only_a_failed_sign_in(attempt, alice):
    for _ in range(LIMIT - 1):
        response, signed_in = attempt("alice", WRONG)
        assert not signed_in and response.status_code in (200, 401), response.status_code

    response, signed_in = attempt("alice", PASSWORD)
    assert signed_in, response.status_code


def test_the_limit_of_wrong_passwords_locks_the_user_even_with_the_right_password(attempt, alice):
    for _ in range(LIMIT - 1):
        attempt("alice", WRONG)
    response, signed_in = attempt("alice", WRONG)
    assert_locked_out(response)

    response, signed_in = attempt("alice", PASSWORD)
    assert not signed_in
    assert_locked_out(response)
    # From any address: the lock is on the username.
    response, signed_in = attempt("alice", PASSWORD, address="203.0.113.99")
    assert not signed_in
    assert_locked_out(response)


def test_failures_from_one_address_lock_it_across_usernames(attempt, alice, bob):
    for number in range(LIMIT):
        attempt(f"guess-{number}", WRONG, address="192.0.2.10")

    response, signed_in = attempt("bob", PASSWORD, address="192.0.2.10")
    assert not signed_in
    assert_locked_out(response)
    # Bob from elsewhere, and another address, are not affected.
    assert attempt("bob", PASSWORD, address="192.0.2.11")[1]


def test_failures_expire_after_the_cool_off(attempt, alice):
    for _ in range(LIMIT):
        attempt("alice", WRONG)
    assert not attempt("alice", PASSWORD)[1]

    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert attempt("alice", PASSWORD)[1]


@pytest.mark.parametrize("command", [("axes_reset_username", "alice"), ("axes_reset_ip", "198.51.100.7"),
                                     ("axes_reset",)])
def test_an_operator_unlocks_by_command(command, alice):
    attempt = SURFACES["sign-in page"]
    for _ in range(LIMIT):
        attempt("alice", WRONG)
    assert not attempt("alice", PASSWORD)[1]

    call_command(*command, stdout=StringIO())

    assert attempt("alice", PASSWORD)[1]


ANONYMOUS, NO_PERMISSION, PERMISSION = "anonymous", "staff without the permission", "superuser"


@pytest.mark.parametrize("who", [ANONYMOUS, NO_PERMISSION, PERMISSION])
def test_an_administrator_unlocks_in_the_admin(who, alice):
    attempt = SURFACES["sign-in page"]
    for _ in range(LIMIT):
        attempt("alice", WRONG)
    locked = list(AccessAttempt.objects.values_list("pk", flat=True))
    assert locked

    admin = Client()
    if who == NO_PERMISSION:
        staff = User.objects.create_user("staffer", password=PASSWORD, is_staff=True)
        staff.user_permissions.add(Permission.objects.get(codename="view_accessattempt"))
        admin.force_login(staff)
    elif who == PERMISSION:
        admin.force_login(User.objects.create_superuser("root", password=PASSWORD))
    listing = admin.get("/admin/axes/accessattempt/", secure=True)
    response = admin.post("/admin/axes/accessattempt/", {"action": "delete_selected", "_selected_action": locked,
                                                         "post": "yes"}, secure=True)

    if who == ANONYMOUS:
        assert listing.status_code == 302 and "/admin/login/" in listing["Location"]
        assert not attempt("alice", PASSWORD)[1]
    elif who == NO_PERMISSION:
        assert listing.status_code == 200 and b"alice" in listing.content  # may see, not delete
        assert AccessAttempt.objects.count() == len(locked)
        assert not attempt("alice", PASSWORD)[1]
    else:
        assert response.status_code == 302 and not AccessAttempt.objects.exists()
        assert attempt("alice", PASSWORD)[1]


def test_the_stored_attempt_keeps_no_password(alice):
    SURFACES["sign-in page"]("alice", "hunter2-secret")

    stored = AccessAttempt.objects.get()
    assert "hunter2-secret" not in stored.post_data and stored.username == "alice"


@pytest.mark.parametrize(("proxies", "remote", "forwarded", "expected"), [
    (0, "10.0.0.5", "203.0.113.1", "10.0.0.5"),                 # no proxy: the header is the client's own
    (1, "127.0.0.1", "203.0.113.1", "203.0.113.1"),
    (1, "127.0.0.1", "6.6.6.6, 203.0.113.1", "203.0.113.1"),  # the client's own entry is ignored
    (2, "127.0.0.1", "6.6.6.6, 203.0.113.1, 10.0.0.2", "203.0.113.1"),
    (1, "127.0.0.1", "", "127.0.0.1"),                        # not through the proxy: its address
    (1, "127.0.0.1", "not-an-address", "127.0.0.1"),
    (1, "127.0.0.1", " 2001:db8::1 ", "2001:db8::1"),
])
def test_the_client_address_behind_trusted_proxies(proxies, remote, forwarded, expected):
    request = RequestFactory().get("/accounts/login/", REMOTE_ADDR=remote,
                                   **({"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {}))
    with override_settings(AEGIS_TRUSTED_PROXY_COUNT=proxies):
        assert client_address(request) == expected


@pytest.mark.django_db
@override_settings(AEGIS_TRUSTED_PROXY_COUNT=1)
def test_behind_a_proxy_each_client_address_is_counted_on_its_own(bob):
    def through_proxy(username, password, client_ip):
        client = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=client_ip)
        client.post("/accounts/login/", {"username": username, "password": password}, secure=True)
        return "_auth_user_id" in client.session

    for number in range(LIMIT):
        through_proxy(f"guess-{number}", WRONG, "192.0.2.50")

    assert not through_proxy("bob", PASSWORD, "192.0.2.50")
    assert through_proxy("bob", PASSWORD, "192.0.2.51")


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("AXES_FAILURE_LIMIT", "0", "AXES_FAILURE_LIMIT must be at least 1, got 0"),
    ("AXES_FAILURE_LIMIT", "five", "AXES_FAILURE_LIMIT must be an integer, got 'five'"),
    ("AXES_COOLOFF_MINUTES", "-5", "AXES_COOLOFF_MINUTES must be 0 (no expiry) or more, got -5"),
    ("AEGIS_TRUSTED_PROXY_COUNT", "one", "AEGIS_TRUSTED_PROXY_COUNT must be an integer, got 'one'"),
])
def test_a_bad_setting_is_named_at_start(variable, value, message):
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "DJANGO_SETTINGS_MODULE"}}
    result = subprocess.run([sys.executable, str(ROOT / "manage.py"), "check"], capture_output=True, text=True,
                            env={**env, "DEBUG": "1", variable: value}, cwd=ROOT, timeout=120)
    assert result.returncode != 0 and message in result.stderr, result.stderr[-500:]


@override_settings(AXES_COOLOFF_TIME=None)
def test_with_no_cool_off_the_lock_lasts_until_an_administrator_lifts_it(alice):
    attempt = SURFACES["sign-in page"]
    for _ in range(LIMIT):
        attempt("alice", WRONG)
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(days=365))

    response, signed_in = attempt("alice", PASSWORD)
    assert not signed_in and response.status_code == 429
    assert b"signing in is blocked until an administrator unlocks it" in response.content
