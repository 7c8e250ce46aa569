"""JSON error bodies `{error, code, request_id}` for every failure, never DRF's bare
`{"detail": …}` nor an HTML page (API.md, "Transport rules")."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import TooManyFieldsSent, TooManyFilesSent
from django.http import JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response

from ..fields import DecryptionError
from .middleware import request_id_of

logger = logging.getLogger("aegis.api")


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
                     "restore the missing key (see README, \"Rotating the encryption key\")")


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
    for kind, (code_status, code, message) in _DRF_ERRORS.items():
        if isinstance(exc, kind):
            text = message or _flatten_detail(exc.detail)
            response = Response(error_body(request, text, code), status=code_status)
            if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
                response["Retry-After"] = str(int(exc.wait) + 1)
            return response
    if isinstance(exc, exceptions.APIException):
        return Response(error_body(request, _flatten_detail(exc.detail), exc.default_code), status=exc.status_code)
    logger.exception("unhandled error in %s %s", request.method, request.path)
    return Response(error_body(request, "Internal server error", "internal_error"),
                    status=status.HTTP_500_INTERNAL_SERVER_ERROR)


def json_not_found(request, exception=None):
    return JsonResponse(error_body(request, f"No such endpoint: {request.path}", "not_found"), status=404)


def json_server_error(request):
    return JsonResponse(error_body(request, "Internal server error", "internal_error"), status=500)


def json_bad_request(request, exception=None):
    """Django's limits on the number of form or query fields name the limit; anything else
    stays a plain "Bad request"."""
    if isinstance(exception, (TooManyFieldsSent, TooManyFilesSent)):
        return JsonResponse(error_body(request, str(exception), "too_many_fields"), status=400)
    return JsonResponse(error_body(request, "Bad request", "bad_request"), status=400)


def json_permission_denied(request, exception=None):
    return JsonResponse(error_body(request, "Forbidden", "forbidden"), status=403)
