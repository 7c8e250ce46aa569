"""Every response carries a fresh X-AEGIS-Request-Id and the server's X-AEGIS-Version."""

import uuid

from governance import __version__

REQUEST_ID_HEADER = "X-AEGIS-Request-Id"
VERSION_HEADER = "X-AEGIS-Version"


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.aegis_request_id = "req_" + uuid.uuid4().hex
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request.aegis_request_id
        response[VERSION_HEADER] = __version__
        return response


def request_id_of(request) -> str:
    return getattr(request, "aegis_request_id", "")
