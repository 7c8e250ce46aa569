"""Reviewer pages under /workflows/."""

from django.urls import path

from . import views

app_name = "workflows"

urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("<uuid:workflow_id>/", views.detail, name="detail"),
    path("<uuid:workflow_id>/events/<str:event>/", views.fire, name="fire"),
]
