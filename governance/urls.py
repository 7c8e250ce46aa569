"""Drift pages under /drift/."""

from django.urls import path

from . import views

app_name = "drift"

urlpatterns = [
    path("", views.drift_overview, name="overview"),
    path("<str:customer_id>/", views.drift_tenant, name="tenant"),
    path("<str:customer_id>/baseline/upload/", views.upload_baseline, name="upload"),
    path("<str:customer_id>/baseline/range/", views.range_baseline, name="range"),
    path("<str:customer_id>/run/", views.run_now, name="run"),
]
