"""The profile page (/profile/): each signed-in user sees their email address and turns
notification emails off and on (POST with CSRF); anonymous visitors are sent to sign in."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from governance.models import TelemetryEvent
from notifications.models import NotificationPreference
from notifications.services import email_enabled
from notify_support import make_user

pytestmark = pytest.mark.django_db

PROFILE = "/profile/"


def client_as(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def test_the_profile_page_has_its_name_and_the_nav_links_it():
    assert reverse("notifications:profile") == PROFILE
    user = make_user("rita")
    page = client_as(user).get("/workflows/", secure=True)
    assert f'href="{PROFILE}"' in page.content.decode()


@pytest.mark.parametrize("who", ["anonymous", "user"])
def test_reading_the_profile_page(who):
    user = make_user("rita") if who == "user" else None
    response = client_as(user).get(PROFILE, secure=True)
    if who == "anonymous":
        assert response.status_code == 302 and response["Location"] == f"/accounts/login/?next={PROFILE}"
        return
    text = response.content.decode()
    assert response.status_code == 200
    assert "rita@example.com" in text and 'id="email-notifications-state">on<' in text
    assert 'name="email_notifications" value="off"' in text and "csrfmiddlewaretoken" in text


@pytest.mark.parametrize("who", ["anonymous", "user"])
def test_turning_email_notifications_off_and_on(who):
    user = make_user("rita")
    response = client_as(user if who == "user" else None).post(PROFILE, {"email_notifications": "off"}, secure=True)
    if who == "anonymous":
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
        assert email_enabled(user) and not NotificationPreference.objects.exists()
        return
    assert response.status_code == 302 and response["Location"] == PROFILE
    assert not email_enabled(user)
    client = client_as(user)
    page = client.get(PROFILE, secure=True).content.decode()
    assert 'id="email-notifications-state">off<' in page
    recorded = TelemetryEvent.objects.get(name="notifications.preference")
    assert (recorded.subject, recorded.data) == (f"user:{user.pk}", {"email_enabled": False})

    followed = client.post(PROFILE, {"email_notifications": "on"}, secure=True, follow=True)
    assert "Email notifications are now on." in followed.content.decode()
    assert email_enabled(user)


def test_a_user_changes_only_their_own_setting():
    rita, rob = make_user("rita"), make_user("rob")
    client_as(rita).post(PROFILE, {"email_notifications": "off"}, secure=True)
    assert (email_enabled(rita), email_enabled(rob)) == (False, True)


@pytest.mark.parametrize("value", ["", "maybe", "OFF"])
def test_a_bad_value_is_refused_with_a_message_and_changes_nothing(value):
    user = make_user("rita")
    response = client_as(user).post(PROFILE, {"email_notifications": value}, secure=True, follow=True)
    assert response.status_code == 200
    assert "email_notifications must be on or off; nothing was changed." in response.content.decode()
    assert email_enabled(user) and not NotificationPreference.objects.exists()


def test_the_form_needs_its_csrf_token():
    user = make_user("rita")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(PROFILE, {"email_notifications": "off"}, secure=True).status_code == 403
    assert email_enabled(user)


def test_a_user_without_an_email_address_is_told_so():
    page = client_as(make_user("nomail", email="")).get(PROFILE, secure=True).content.decode()
    assert "you get no notification emails until an administrator adds your address" in page
