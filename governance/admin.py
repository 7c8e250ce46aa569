"""Admin for tenants, keys and decisions. State changes go through `governance.services`."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.db import models
from django.utils.html import format_html

from . import services
from .api.errors import ApiError
from .json_limits import display_json
from .models import ApiKey, Customer, Decision, DecisionSeal, DriftBaseline, DriftReport, TelemetryEvent, Tier


class SortableByChangeList(ChangeList):
    """A change list that honours `sortable_by` for `?o=` too. Django only drops the header
    links of the columns left out of `sortable_by`; a hand-written `?o=<index>` would still
    order by them. Encrypted (PII) columns are left out because ordering by them orders
    by ciphertext, i.e. randomly."""

    def get_ordering_field(self, field_name):
        if self.sortable_by is not None and field_name not in self.sortable_by:
            return None
        return super().get_ordering_field(field_name)

    def get_ordering_field_columns(self):
        """Without the ignored indexes, so the headers neither mark such a column as sorted
        nor carry its index into their sort links."""
        columns = super().get_ordering_field_columns()
        if self.sortable_by is None:
            return columns
        return {index: order for index, order in columns.items()
                if index < len(self.list_display) and self.list_display[index] in self.sortable_by}


class SortableByAdmin(admin.ModelAdmin):
    """An admin whose `sortable_by` is enforced, not only displayed. Every admin whose
    list_display shows an encrypted column derives from it and sets `sortable_by` without
    that column (tests/encryption/test_admin_sorting.py checks every registered admin)."""

    def get_changelist(self, request, **kwargs):
        return SortableByChangeList


def _is_json(field) -> bool:
    return isinstance(field, models.JSONField) or getattr(field, "value_type", None) == "json"


def _json_shown(field):
    """A read-only admin field showing a stored JSON value as indented text, however deep
    (`display_json`): Django would show it with repr() or the json encoder, which recurse
    and fail on data stored before the depth limit."""
    def shown(obj):
        value = getattr(obj, field.name)
        if value in (None, "", {}, []):
            return "-"
        return format_html('<pre style="margin:0;white-space:pre-wrap">{}</pre>', display_json(value))

    shown.__name__ = field.name
    shown.short_description = field.verbose_name
    return shown


class ReadOnlyInline(admin.TabularInline):
    """Rows shown under their parent record, never added, edited or deleted there;
    subclasses set `model` and `fields`."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request, obj=None):
        return False


class ReadOnlyAdmin(SortableByAdmin):
    """For records nobody edits by hand (decisions, audit trail, versions, telemetry).
    JSON fields are shown through `_json_shown`."""

    def get_fields(self, request, obj=None):
        json_fields = {field.name: field for field in self.model._meta.concrete_fields if _is_json(field)}
        return [_json_shown(json_fields[name]) if isinstance(name, str) and name in json_fields else name
                for name in super().get_fields(request, obj)]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Tier)
class TierAdmin(admin.ModelAdmin):
    list_display = ("name", "display_name", "monthly_evaluations", "rate_per_minute", "max_keys")


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("name", "customer_id", "tier", "status", "created_at")
    list_filter = ("tier", "status")
    search_fields = ("name", "customer_id", "company")
    readonly_fields = ("customer_id", "created_at", "updated_at")


class ApiKeyCreationForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ("customer", "name")

    def clean(self):
        cleaned = super().clean()
        customer = cleaned.get("customer")
        if customer is not None:
            active = customer.api_keys.filter(revoked_at__isnull=True).count()
            if active >= customer.tier.max_keys:
                raise forms.ValidationError(
                    f"Tier {customer.tier.name!r} allows {customer.tier.max_keys} active keys; revoke one first.")
        return cleaned


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are created here or by the API; the plaintext is shown once, after saving."""

    list_display = ("name", "key_id", "prefix", "customer", "created_at", "last_used_at", "enabled")
    list_filter = ("customer",)
    search_fields = ("name", "key_id", "prefix")
    readonly_fields = ("key_id", "prefix", "customer", "created_at", "revoked_at", "last_used_at")
    actions = ["revoke_selected"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ApiKeyCreationForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def get_fields(self, request, obj=None):
        return ("customer", "name") if obj is None else ("name",) + self.readonly_fields

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        key, plaintext = services.create_api_key(obj.customer, obj.name)
        obj.pk, obj.key_id = key.pk, key.key_id
        self.message_user(request, f"API key {key.key_id} created. Copy it now, it is not shown again: {plaintext}",
                          messages.WARNING)

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead, so decisions keep pointing at the key

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke_selected(self, request, queryset):
        revoked = 0
        for key in queryset:
            try:
                services.revoke_api_key(None, key.key_id)
                revoked += 1
            except ApiError as exc:
                self.message_user(request, exc.message, messages.ERROR)
        self.message_user(request, f"Revoked {revoked} key(s).", messages.SUCCESS)


@admin.register(Decision)
class DecisionAdmin(ReadOnlyAdmin):
    """Decisions are records: read-only."""

    list_display = ("decision_id", "customer", "status", "shadow", "channel", "config_version", "created_at")
    list_filter = ("status", "shadow", "channel", "customer")
    date_hierarchy = "created_at"
    search_fields = ("decision_id",)


@admin.register(DecisionSeal)
class DecisionSealAdmin(ReadOnlyAdmin):
    """Seal blocks are append-only records (governance.sealing): view only."""

    list_display = ("seq", "first_pk", "last_pk", "count", "hash", "created_at")
    exclude = ("entries",)  # up to 5,000 entries: `aegis_verify_chain --all` reads them, not people


@admin.register(DriftBaseline)
class DriftBaselineAdmin(SortableByAdmin):
    list_display = ("customer", "source", "created_by", "created_at")
    sortable_by = ("customer", "source", "created_at")  # created_by is encrypted: it would sort by ciphertext
    readonly_fields = ("customer", "values", "source", "created_by", "created_at")

    def has_add_permission(self, request):
        return False  # set on the drift pages, where the values are validated


@admin.register(DriftReport)
class DriftReportAdmin(admin.ModelAdmin):
    list_display = ("customer", "day", "status", "kl_divergence", "n_current", "n_baseline")
    list_filter = ("status", "customer")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(TelemetryEvent)
class TelemetryEventAdmin(ReadOnlyAdmin):
    """Telemetry events are append-only records: view only. `actor` and `data` are PII
    columns (encrypted at rest), so there is no search or filter on them here; the
    /telemetry/ page filters by actor (in Python, over the decrypted values)."""

    list_display = ("name", "occurred_at", "actor", "subject")
    sortable_by = ("name", "occurred_at", "subject")  # actor is encrypted: it would sort by ciphertext
    list_filter = ("name", "occurred_at")
    show_full_result_count = False  # the table grows without bound: no second COUNT(*)
