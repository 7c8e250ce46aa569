"""/api/decisions…"""

from django.urls import path

from . import decisions, sealing

urlpatterns = [
    path("decisions/<str:decision_id>", decisions.DecisionView.as_view(), name="api-decision"),
    path("decisions/<str:decision_id>/override", decisions.DecisionOverrideView.as_view(),
         name="api-decision-override"),
    path("decisions/<str:decision_id>/events/<str:event>", decisions.DecisionReviewView.as_view(),
         name="api-decision-event"),
    path("decisions/<str:decision_id>/verify", sealing.verify_decision, name="api-decision-verify"),
]
