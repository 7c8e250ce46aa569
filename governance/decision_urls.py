"""Decision pages under /decisions/ (governance.decision_views)."""

from django.urls import path

from . import decision_views as views

app_name = "decisions"

urlpatterns = [
    path("", views.decision_list, name="list"),
    path("<uuid:decision_id>/", views.decision_detail, name="detail"),
    path("<uuid:decision_id>/override/", views.request_override, name="override"),
    path("<uuid:decision_id>/events/<str:event>/", views.review_event, name="event"),
]
