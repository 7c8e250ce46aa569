"""/api/workflows…"""

from django.urls import path

from . import api

urlpatterns = [
    path("workflows", api.WorkflowListView.as_view(), name="api-workflows"),
    path("workflows/proposals", api.ProposalWorkflowCreateView.as_view(), name="api-workflow-proposals"),
    path("workflows/consensus", api.ConsensusWorkflowCreateView.as_view(), name="api-workflow-consensus"),
    path("workflows/<str:workflow_id>", api.WorkflowDetailView.as_view(), name="api-workflow"),
    path("workflows/<str:workflow_id>/events/<str:event>", api.WorkflowEventView.as_view(), name="api-workflow-event"),
    path("workflows/<str:workflow_id>/verify", api.WorkflowVerifyView.as_view(), name="api-workflow-verify"),
]
