"""The profile page: the signed-in user's email address, their switch for notification
emails and the notifications they were sent lately."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render

from governance.api.middleware import request_id_of

from . import services
from .models import NotificationDelivery

RECENT = 20
CHOICES = {"on": True, "off": False}


@login_required
def profile(request):
    if request.method == "POST":
        choice = request.POST.get("email_notifications", "")
        if choice not in CHOICES:
            messages.error(request, "email_notifications must be on or off; nothing was changed.")
        else:
            services.set_email_notifications(request.user, enabled=CHOICES[choice],
                                             request_id=request_id_of(request))
            messages.success(request, f"Email notifications are now {choice}.")
        return redirect("notifications:profile")
    recent = (NotificationDelivery.objects.filter(user=request.user, channel=NotificationDelivery.Channel.EMAIL)
              .select_related("event")[:RECENT])
    return render(request, "notifications/profile.html", {
        "email_enabled": services.email_enabled(request.user), "recent": recent})
