"""The project's URLs plus POST /api/decisions/<id>/verify, for the tests until the route is
in governance/api/decision_urls.py (it comes first here, so it is the same view either way)."""

from django.urls import path

from aegis_site.urls import handler400, handler403, handler404, handler500  # noqa: F401 — served from here
from aegis_site.urls import urlpatterns as project_urlpatterns
from governance.api import sealing

urlpatterns = [
    path("api/decisions/<str:decision_id>/verify", sealing.verify_decision, name="api-decision-verify"),
    *project_urlpatterns,
]
