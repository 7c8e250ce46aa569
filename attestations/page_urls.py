"""Attestation pages under /decisions/attestations/ (attestations.views)."""

from django.urls import path

from . import views

app_name = "attestations"

urlpatterns = [
    path("", views.attestation_list, name="list"),
    path("<str:decision_id>/", views.attestation_detail, name="detail"),
]
