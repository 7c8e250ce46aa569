"""Refuses hostile requests before any view reads them (docs/decisions.md, "Hostile input").

- A body whose Content-Length is over AEGIS_MAX_BODY_BYTES: 413, answered before a byte of
  it is read, so an anonymous client cannot make a worker read and hold hundreds of
  megabytes. Django reads no further than Content-Length, and a body without one as empty;
  so a chunked body (no Content-Length) is a 411, not silently taken for an empty one.
- A NUL character in the path, a query parameter, a header or a form field: 400 naming
  where. No client has a reason to send one, and PostgreSQL cannot store it in a text
  column, so letting it through ends in a 500 wherever it reaches a query. (JSON bodies
  are checked by their parser, `governance.json_limits`; API views parse no forms, so
  theirs are left unread for DRF to refuse with 415.)
"""

from __future__ import annotations

from django.conf import settings
from rest_framework.views import APIView

from .errors import ApiError, body_too_large, error_response

FORM_CONTENT_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _nul_refusal(where: str) -> ApiError:
    return ApiError(400, "nul_character", f"{where} must not contain NUL characters (%00, \\u0000)")


def _declared_length(request) -> int | None:
    try:
        return int(request.META.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None  # Django reads such a body as empty


def _nul_in_url_or_headers(request) -> ApiError | None:
    if "\x00" in request.path:
        return _nul_refusal("The URL path")
    refusal = _nul_in_fields(request.GET, "query parameter")
    if refusal is not None:
        return refusal
    for key, value in request.META.items():
        if key.startswith("HTTP_") and isinstance(value, str) and "\x00" in value:
            return _nul_refusal(f"Header {key[5:].replace('_', '-').title()}")
    return None


def _nul_in_fields(fields, kind: str) -> ApiError | None:
    """A NUL in the names or values of query parameters or form fields (a QueryDict)."""
    for name, values in fields.lists():
        if "\x00" in name:
            return _nul_refusal(f"A {kind} name")
        if any("\x00" in value for value in values):
            return _nul_refusal(f"{kind[0].upper()}{kind[1:]} {name!r}")
    return None


def _nul_in_form(request) -> ApiError | None:
    refusal = _nul_in_fields(request.POST, "form field")
    if refusal is not None:
        return refusal
    for name, files in request.FILES.lists():
        if "\x00" in name or any("\x00" in (upload.name or "") for upload in files):
            return _nul_refusal(f"Uploaded file {name!r}")
    return None


class RequestGuardMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        declared = _declared_length(request)
        if declared is not None and declared > settings.AEGIS_MAX_BODY_BYTES:
            return error_response(request, body_too_large(declared))
        if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            return error_response(request, ApiError(411, "length_required", "A request body needs a Content-Length "
                                                                            "header; chunked bodies are not accepted"))
        refusal = _nul_in_url_or_headers(request)
        if refusal is not None:
            return error_response(request, refusal)
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        is_api_view = isinstance(getattr(view_func, "cls", None), type) and issubclass(view_func.cls, APIView)
        if is_api_view or request.method != "POST" or request.content_type not in FORM_CONTENT_TYPES:
            return None
        refusal = _nul_in_form(request)
        return None if refusal is None else error_response(request, refusal)
