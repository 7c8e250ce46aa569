"""Read-only admin of what was announced and how each delivery went: failures and their
errors are found by filtering on status."""

from django.contrib import admin
from django.utils.text import Truncator

from governance.admin import ReadOnlyAdmin, ReadOnlyInline

from .models import NotificationDelivery, NotificationEvent


class DeliveryInline(ReadOnlyInline):
    model = NotificationDelivery
    fields = ("channel", "user", "status", "attempts", "last_error", "sent_at")


@admin.register(NotificationEvent)
class NotificationEventAdmin(ReadOnlyAdmin):
    list_display = ("occurred_at", "kind", "subject")
    list_filter = ("kind",)
    search_fields = ("subject", "key")
    fields = ("key", "kind", "occurred_at", "subject", "payload")
    inlines = [DeliveryInline]


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(ReadOnlyAdmin):
    # Status and error first: the list is read for its failures.
    list_display = ("created_at", "status", "channel", "recipient", "attempts", "last_error", "sent_at", "about")
    list_filter = ("status", "channel", "event__kind")
    list_select_related = ("event", "user")
    search_fields = ("event__subject", "user__username")
    fields = ("event", "channel", "user", "status", "attempts", "last_error", "claimed_at", "created_at", "sent_at")

    @admin.display(description="about", ordering="event__subject")
    def about(self, obj):
        return Truncator(obj.event.subject).chars(60)

    @admin.display(description="recipient", ordering="user__username")
    def recipient(self, obj):
        return obj.user.get_username() if obj.user_id else "webhook"
