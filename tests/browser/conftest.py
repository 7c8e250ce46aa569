"""Browser-test infrastructure: Debian's chromium, driven by Playwright's sync API, against
pytest-django's `live_server`.

Fixtures and helpers for every tests/browser/test_browser_*.py module:

- `browser_page`: a fresh chromium page (own browser context) per test; requests that
  would leave 127.0.0.1 are aborted and fail the test.
- `live_server`: pytest-django's server, started only after the test database exists
  and with the HTTPS-only production settings (test_settings keeps DEBUG off) relaxed,
  for the browser only, so plain http://127.0.0.1 works.
- `login(page, live_server, username, password)`, `logout(page)` and `screenshot(page, name)`,
  as fixtures returning those functions.

Never `playwright install`: chromium comes from Debian (`apt-get install chromium`). A
missing chromium FAILS the browser tests, it does not skip them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.test.utils import override_settings

# The live server must listen on (and the browser talk to) 127.0.0.1 only, not whatever
# "localhost" resolves to. Read by pytest-django when `live_server` first starts.
os.environ.setdefault("DJANGO_LIVE_TEST_SERVER_ADDRESS", "127.0.0.1")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
    # Belt and braces: chromium itself cannot resolve any host name besides the loopback.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
ALLOWED_HOSTS = {"127.0.0.1"}
DEFAULT_TIMEOUT_MS = 15_000

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"  # git-ignored

MISSING_CHROMIUM = (
    f"Browser tests need Debian's chromium at {CHROMIUM}; install it with "
    "`apt-get install chromium` (never `playwright install`)."
)


# --- the server ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def _no_ssl_redirect_while_starting():
    """test_settings keeps DEBUG off, hence SECURE_SSL_REDIRECT: the browser would be sent
    to https://127.0.0.1, which nothing serves. SecurityMiddleware reads the setting once,
    when the live server builds its handler, so it is off only while the server starts
    (see `live_server`) and the rest of the suite keeps the production value."""
    override = override_settings(SECURE_SSL_REDIRECT=False)
    override.enable()
    yield override
    if hasattr(override, "wrapped"):  # still enabled: the server never started
        override.disable()


@pytest.fixture(scope="session")
def live_server(django_db_setup, _no_ssl_redirect_while_starting, live_server):
    """pytest-django's live_server, started after the test database exists (so an in-memory
    SQLite test database is shared with the server thread) and serving plain http."""
    if hasattr(_no_ssl_redirect_while_starting, "wrapped"):
        _no_ssl_redirect_while_starting.disable()
    return live_server


# --- the browser --------------------------------------------------------------------------

@pytest.fixture
def browser_page(monkeypatch):
    """A chromium page in its own context. Fails (never skips) without Debian's chromium."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(MISSING_CHROMIUM, pytrace=False)
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Browser tests need the `playwright` Python package: install the test extras "
                    "(`pip install -e '.[test]'`). Do not run `playwright install`.", pytrace=False)

    # Playwright's sync API keeps an event loop running in this thread, so Django would
    # refuse ORM calls from the test body ("SynchronousOnlyOperation"); the test body is
    # still plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    blocked: list[str] = []
    # Secure cookies are for https; these are read per response, so per test is enough.
    with override_settings(SESSION_COOKIE_SECURE=False, CSRF_COOKIE_SECURE=False), sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except PlaywrightError as exc:
            pytest.fail(f"{MISSING_CHROMIUM}\nLaunching it failed: {exc}", pytrace=False)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})

            def only_loopback(route):
                host = urlsplit(route.request.url).hostname
                if route.request.url.startswith(("data:", "blob:", "about:")) or host in ALLOWED_HOSTS:
                    route.continue_()
                else:
                    blocked.append(route.request.url)
                    route.abort()

            context.route(re.compile(r".*"), only_loopback)
            page = context.new_page()
            page.set_default_timeout(DEFAULT_TIMEOUT_MS)
            yield page
            context.close()
        finally:
            # While Playwright's loop runs, asgiref keys Django's connections by context, not
            # by thread: the test body's ORM calls opened connections of their own, which
            # pytest-django never closes (on PostgreSQL the test database then cannot be
            # dropped). Close them here, still inside that context.
            from django.db import connections

            connections.close_all()
            browser.close()
    assert not blocked, f"the pages tried to reach hosts other than 127.0.0.1: {blocked}"


# --- helpers ------------------------------------------------------------------------------
# Offered to test modules as fixtures (`login`, `logout`, `screenshot`), since conftest
# modules are not importable by name.

def save_screenshot(page, name: str) -> Path:
    """Save a full-page PNG for review as test-artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def log_in(page, live_server, username: str, password: str) -> None:
    """Sign in through /accounts/login/; lands on LOGIN_REDIRECT_URL (/workflows/)."""
    page.goto(f"{live_server.url}/accounts/login/")
    if urlsplit(page.url).scheme != "http":
        pytest.fail(f"the live server redirected to {page.url}: it was started before the browser "
                    "conftest could turn SECURE_SSL_REDIRECT off", pytrace=False)
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    if urlsplit(page.url).path.startswith("/accounts/login/"):
        error = page.locator(".messages .error")
        detail = error.inner_text() if error.count() else "no error shown"
        pytest.fail(f"login as {username!r} failed: still on {page.url} ({detail})", pytrace=False)


def log_out(page) -> None:
    """Press the header's Log out button (a POST to /accounts/logout/)."""
    with page.expect_navigation():
        page.click("header form[action='/accounts/logout/'] button[type=submit]")


@pytest.fixture
def login():
    """`login(page, live_server, username, password)`."""
    return log_in


@pytest.fixture
def logout():
    """`logout(page)`."""
    return log_out


@pytest.fixture
def screenshot():
    """`screenshot(page, name)` -> the saved PNG's path."""
    return save_screenshot
