"""Client paths exactly as API.md: no trailing slash, never redirected."""

from django.urls import path

from . import views

urlpatterns = [
    path("health", views.HealthView.as_view(), name="health"),
    path("evaluate", views.EvaluateView.as_view(), name="evaluate"),
    path("sandbox/evaluate", views.SandboxEvaluateView.as_view(), name="sandbox-evaluate"),
    path("risk-check", views.RiskCheckView.as_view(), name="risk-check"),
    path("customer/profile", views.ProfileView.as_view(), name="customer-profile"),
    path("customer/usage", views.UsageView.as_view(), name="customer-usage"),
    path("customer/usage/<str:month>", views.UsageMonthView.as_view(), name="customer-usage-month"),
    path("customer/keys", views.KeysView.as_view(), name="customer-keys"),
    path("customer/keys/<str:key_id>", views.KeyDetailView.as_view(), name="customer-key"),
    path("customer/decisions", views.DecisionsView.as_view(), name="customer-decisions"),
    path("customer/decisions/<str:decision_id>", views.DecisionDetailView.as_view(), name="customer-decision"),
]
