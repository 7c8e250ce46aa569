"""The risk lead's calibration pages under /calibration/."""

from django.urls import path

from . import views

app_name = "calibration"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("new/", views.propose, name="propose"),
    path("versions/", views.versions, name="versions"),
    path("<uuid:proposal_id>/", views.review, name="review"),
    path("<uuid:proposal_id>/<str:action>/", views.step, name="step"),
]
