"""JSON error bodies `{error, code, request_id}` for every failure on a client-facing or
/api/ path, never DRF's bare `{"detail": …}` nor an HTML page (API.md, "Transport rules");
HTML error pages in the project's look for the browser pages; every server error logged."""

from __future__ import annotations

import logging
import sys

from django.conf import settings
from django.core.exceptions import TooManyFieldsSent, TooManyFilesSent
from django.core.signals import got_request_exception
from django.dispatch import receiver
from django.http import HttpResponse, HttpResponsePermanentRedirect, JsonResponse
from django.shortcuts import render
from django.template import loader
from django.urls import is_valid_path
from rest_framework import exceptions, status
from rest_framework.response import Response

from ..fields import DecryptionError
from ..metrics import SERVER_ERRORS
from .middleware import request_id_of

logger = logging.getLogger("aegis.api")
server_error_logger = logging.getLogger("aegis.server_errors")

# The browser's part of the site; every other path is client-facing or API and answers JSON.
PAGE_PREFIXES = ("/admin/", "/accounts/", "/workflows/", "/decisions/", "/calibration/", "/drift/",
                 "/telemetry/", "/profile/", "/static/")


def is_page_path(path: str) -> bool:
    """A browser page (HTML errors) rather than a client-facing or API path (JSON errors),
    with or without its trailing slash: APPEND_SLASH is off (API paths are never
    redirected), so `/telemetry` or `/decisions/<id>` typed without it must still be a page."""
    return path == "/" or f"{path}/".startswith(PAGE_PREFIXES)


class ApiError(Exception):
    """An error answer: status, stable machine code, human message, extra headers."""

    def __init__(self, status_code: int, code: str, message: str, *, headers: dict | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_body(request, message: str, code: str) -> dict:
    return {"error": message, "code": code, "request_id": request_id_of(request)}


def error_response(request, error: ApiError) -> JsonResponse:
    """An ApiError answered outside DRF (middleware, Django's error handlers)."""
    return JsonResponse(error_body(request, error.message, error.code), status=error.status_code)


def body_too_large(declared_bytes: int | None) -> ApiError:
    size = "" if declared_bytes is None else f"of {declared_bytes:,} bytes "
    return ApiError(413, "payload_too_large", f"The request body {size}is over the limit of "
                                              f"{settings.AEGIS_MAX_BODY_BYTES:,} bytes")


def _flatten_detail(detail) -> str:
    if isinstance(detail, dict):
        return "; ".join(f"{field}: {_flatten_detail(value)}" for field, value in detail.items())
    if isinstance(detail, list):
        return "; ".join(_flatten_detail(item) for item in detail)
    return str(detail)


# DRF exception -> (status, code, message or None to use the exception's own text).
_DRF_ERRORS = {
    exceptions.NotAuthenticated: (401, "invalid_api_key", "Invalid API key"),
    exceptions.AuthenticationFailed: (401, "invalid_api_key", "Invalid API key"),
    exceptions.PermissionDenied: (403, "forbidden", None),
    exceptions.NotFound: (404, "not_found", None),
    exceptions.MethodNotAllowed: (405, "method_not_allowed", None),
    exceptions.NotAcceptable: (406, "not_acceptable", None),
    exceptions.UnsupportedMediaType: (415, "unsupported_media_type", None),
    exceptions.ParseError: (400, "malformed_json", None),
    exceptions.ValidationError: (400, "invalid_request", None),
    exceptions.Throttled: (429, "rate_limited", None),
}


DECRYPTION_FAILED = ("Stored data cannot be decrypted with the configured FERNET_KEYS; an operator must "
                     "restore the missing key (see docs/operations.md, \"Rotating the encryption key\")")


def decryption_failed(request, error: DecryptionError) -> JsonResponse:
    """503, not 500: the server is misconfigured (a key is missing), nothing is broken in the
    request. The log names the column, never a value."""
    logger.error("%s (%s %s)", error, request.method, request.path)
    return JsonResponse(error_body(request, DECRYPTION_FAILED, "decryption_failed"), status=503)


class DecryptionErrorMiddleware:
    """Answers a DecryptionError raised by any view (pages, admin) with the clear 503."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, DecryptionError):
            return decryption_failed(request, exception)
        return None


def exception_handler(exc, context):
    """DRF's EXCEPTION_HANDLER: map every API exception to the JSON error shape."""
    request = context["request"]
    if isinstance(exc, DecryptionError):
        return decryption_failed(request, exc)
    if isinstance(exc, ApiError):
        response = Response(error_body(request, exc.message, exc.code), status=exc.status_code)
        for name, value in exc.headers.items():
            response[name] = value
        return response
    if isinstance(exc, exceptions.AuthenticationFailed) and getattr(request, "axes_locked_out", False):
        # HTTP Basic with the password of a locked-out user, or from a locked-out address.
        from ..login_protection import locked_out_json  # not at the top: it imports this module

        return locked_out_json(request)
    for kind, (code_status, code, message) in _DRF_ERRORS.items():
        if isinstance(exc, kind):
            text = message or _flatten_detail(exc.detail)
            response = Response(error_body(request, text, code), status=code_status)
            if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
                response["Retry-After"] = str(int(exc.wait) + 1)
            return response
    if isinstance(exc, exceptions.APIException):
        return Response(error_body(request, _flatten_detail(exc.detail), exc.default_code), status=exc.status_code)
    report_server_error(request, (type(exc), exc, exc.__traceback__))
    return Response(error_body(request, "Internal server error", "internal_error"),
                    status=status.HTTP_500_INTERNAL_SERVER_ERROR)


def report_server_error(request, exc_info) -> None:
    """One log line (request id, method, path, exception type) with the traceback, on stderr
    whatever DEBUG says, and one count in aegis_server_errors_total. No body, no headers: they
    may hold keys or personal data."""
    kind = exc_info[0].__name__ if exc_info and exc_info[0] else "unknown"
    SERVER_ERRORS.labels(exception=kind).inc()
    server_error_logger.error("Server error %s on %s %s: %s", request_id_of(request) or "(no request id)",
                              request.method, request.path, kind, exc_info=exc_info)


@receiver(got_request_exception, dispatch_uid="aegis-report-server-error")
def _report_unhandled_exception(sender, request=None, **kwargs):
    """Django sends this for every exception it answers with a 500 (views outside DRF,
    middleware); DRF views report theirs in exception_handler."""
    if request is not None:
        report_server_error(request, sys.exc_info())


# Status -> (code, message) for error answers an API path gets from outside our views:
# Django's 404 with DEBUG on, 405 of plain Django views, CSRF's 403, the 500 page.
_ERROR_TEXTS = {
    400: ("bad_request", "Bad request"),
    401: ("invalid_api_key", "Invalid API key"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", None),
    405: ("method_not_allowed", None),
    413: ("payload_too_large", "Request body too large"),
    429: ("rate_limited", "Too many requests"),
    500: ("internal_error", "Internal server error"),
}
# Headers of the replaced answer that still tell the client something.
_KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")


def json_error_for_status(request, status_code: int, allow: str = "") -> JsonResponse:
    code, message = _ERROR_TEXTS.get(status_code, ("error", None))
    if status_code == 404:
        message = f"No such endpoint: {request.path}"
    elif status_code == 405:
        message = f"Method {request.method} not allowed on {request.path}" + (f"; allowed: {allow}" if allow else "")
    elif message is None:
        message = HttpResponse(status=status_code).reason_phrase
    return JsonResponse(error_body(request, message, code), status=status_code)


class JsonErrorsOnApiPathsMiddleware:
    """The net under every error answer. On a client-facing or /api/ path, one that is not
    JSON (Django's technical 404 and 500 pages with DEBUG on, a plain view's empty 405, the
    CSRF page) is replaced by the JSON error of the same status. On a page, a path missing
    only its trailing slash is redirected to it (pages only: APPEND_SLASH is off for the API),
    and a 404 that is not the project's page (Django answers a missing id or path with its
    technical page, URL list included, whenever DEBUG is on, without calling handler404)
    becomes the project's 404."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code < 400:
            return response
        if is_page_path(request.path_info):
            if response.status_code != 404:
                return response
            if request.method in ("GET", "HEAD") and not request.path_info.endswith("/") and is_valid_path(
                    f"{request.path_info}/", getattr(request, "urlconf", None)):
                return HttpResponsePermanentRedirect(request.get_full_path(force_append_slash=True))
            if not getattr(response, "is_project_error_page", False):
                return _error_page("404.html", 404, request)
            return response
        if response.get("Content-Type", "").startswith("application/json"):
            return response
        replacement = json_error_for_status(request, response.status_code, response.get("Allow", ""))
        for name in _KEPT_HEADERS:
            if name in response:
                replacement[name] = response[name]
        return replacement


def _error_page(template: str, status_code: int, request=None, context: dict | None = None) -> HttpResponse:
    """The project's page; rendered without the request for 400 and 500, whose cause may be
    the request or the database that the context processors read. Marked, so that
    JsonErrorsOnApiPathsMiddleware knows it from Django's technical pages."""
    try:
        if request is None:
            response = HttpResponse(loader.render_to_string(template, context), status=status_code)
        else:
            response = render(request, template, context, status=status_code)
    except Exception:  # a broken template must not turn an error page into a crash
        server_error_logger.exception("The %s error page could not be rendered", status_code)
        response = HttpResponse(f"{status_code} {HttpResponse(status=status_code).reason_phrase}",
                                content_type="text/plain", status=status_code)
    response.is_project_error_page = True
    return response


def not_found(request, exception=None):
    if is_page_path(request.path_info):
        return _error_page("404.html", 404, request)
    return json_error_for_status(request, 404)


def server_error(request):
    if is_page_path(request.path_info):
        return _error_page("500.html", 500)
    return json_error_for_status(request, 500)


def bad_request(request, exception=None):
    if is_page_path(request.path_info):
        return _error_page("400.html", 400)
    if isinstance(exception, (TooManyFieldsSent, TooManyFilesSent)):  # Django's limit, named
        return JsonResponse(error_body(request, str(exception), "too_many_fields"), status=400)
    return json_error_for_status(request, 400)


def permission_denied(request, exception=None):
    """On a page, the 403 says what is missing: the PermissionDenied's own message, which the
    code raising it writes for the reader (the permission or role, and who holds it)."""
    if is_page_path(request.path_info):
        reason = str(exception) if exception is not None else ""
        return _error_page("403.html", 403, request, {"reason": reason})
    return json_error_for_status(request, 403)
