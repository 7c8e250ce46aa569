"""/api/calibration… and /api/config…"""

from django.urls import path

from . import api

urlpatterns = [
    path("calibration/proposals", api.ProposalListView.as_view(), name="api-calibration-proposals"),
    path("calibration/validate", api.ValidateView.as_view(), name="api-calibration-validate"),
    path("calibration/proposals/<str:proposal_id>", api.ProposalDetailView.as_view(), name="api-calibration-proposal"),
    path("calibration/proposals/<str:proposal_id>/approve", api.ProposalStepView.as_view(step="approve"),
         name="api-calibration-approve"),
    path("calibration/proposals/<str:proposal_id>/reject", api.ProposalStepView.as_view(step="reject"),
         name="api-calibration-reject"),
    path("calibration/proposals/<str:proposal_id>/withdraw", api.ProposalStepView.as_view(step="withdraw"),
         name="api-calibration-withdraw"),
    path("calibration/proposals/<str:proposal_id>/apply", api.ProposalStepView.as_view(step="apply"),
         name="api-calibration-apply"),
    path("calibration/proposals/<str:proposal_id>/preview", api.ProposalPreviewView.as_view(),
         name="api-calibration-preview"),
    path("config", api.ActiveConfigView.as_view(), name="api-config"),
    path("config/versions", api.VersionListView.as_view(), name="api-config-versions"),
    path("config/versions/diff", api.VersionDiffView.as_view(), name="api-config-diff"),
    path("config/versions/<str:version>", api.VersionDetailView.as_view(), name="api-config-version"),
]
