"""Client paths of the hosted service: no trailing slash, never redirected."""

from django.urls import path

from . import api

urlpatterns = [
    path("attest", api.AttestView.as_view(), name="attest"),
    path("attestations/keys", api.PublicKeysView.as_view(), name="attestation-keys"),
    path("attestations/verify", api.VerifyView.as_view(), name="attestation-verify"),
    path("attestations/<str:decision_id>", api.AttestationDetailView.as_view(), name="attestation"),
]
