"""Root URLs. Client-facing API paths have no trailing slash (API.md)."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from governance.metrics import metrics_view
from workflows.home import SignInView, home


def favicon(request):
    """Browsers ask for /favicon.ico whatever the pages link: send them to the SVG icon
    (resolved per request, so the hashed production name is used)."""
    return redirect(static("aegis/favicon.svg"), permanent=True)


urlpatterns = [
    path("", home, name="home"),
    path("favicon.ico", favicon, name="favicon"),
    path("admin/", admin.site.urls),
    path("accounts/login/", SignInView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("workflows/", include("workflows.urls")),
    path("profile/", include("notifications.urls")),
    path("metrics", metrics_view, name="metrics"),
    path("api/schema", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("api/", include("workflows.api_urls")),
    path("api/", include("governance.api.decision_urls")),
    path("api/", include("calibration.api_urls")),
    path("calibration/", include("calibration.urls")),
    path("drift/", include("governance.urls")),
    path("telemetry/", include("governance.telemetry_views")),
    path("decisions/attestations/", include("attestations.page_urls")),
    path("decisions/", include("governance.decision_urls")),
    path("", include("governance.api.urls")),
    path("", include("attestations.urls")),
]

# JSON on client-facing and /api/ paths, the project's HTML pages elsewhere (with DEBUG on,
# JsonErrorsOnApiPathsMiddleware keeps API paths JSON while pages show Django's debug pages).
handler400 = "governance.api.errors.bad_request"
handler403 = "governance.api.errors.permission_denied"
handler404 = "governance.api.errors.not_found"
handler500 = "governance.api.errors.server_error"
