"""Test-only URLconf: every production route, plus views that fail on purpose — a 500 on an
API path (from a DRF view and from a plain Django view), a 500 on a page, and a plain
Django view that answers 405 for anything but GET."""

from django.http import HttpResponse
from django.urls import path
from django.views.decorators.http import require_GET
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from aegis_site.urls import handler400, handler403, handler404, handler500  # noqa: F401
from aegis_site.urls import urlpatterns as production_urlpatterns


class ServerFault(RuntimeError):
    """Raised by the failing views; its name shows which error the log and metric count."""


class FailingApiView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    def get(self, request):
        raise ServerFault("the DRF view failed")


def failing_plain_view(request):
    raise ServerFault("the plain view failed")


@require_GET
def get_only_plain_view(request):
    return HttpResponse("ok")


urlpatterns = [
    path("api/test-failure/drf", FailingApiView.as_view()),
    path("api/test-failure/plain", failing_plain_view),
    path("api/test-get-only", get_only_plain_view),
    path("workflows/test-failure/", failing_plain_view),
    *production_urlpatterns,
]
