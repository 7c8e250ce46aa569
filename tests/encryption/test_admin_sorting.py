"""No admin change list sorts by an encrypted (PII) column.

An EncryptedField holds Fernet ciphertext, different on every write: ORDER BY on it sorts
by random bytes while looking like a real sort. So for EVERY ModelAdmin registered on the
admin site (future ones included: the registry is iterated, nothing is listed by hand):

1. no list_display column whose ordering would reach an encrypted field (the field itself,
   an `admin_order_field` pointing at one, or a relation whose model orders by one) is in
   `get_sortable_by(request)`, while every other sortable column stays sortable;
2. a hand-written `?o=<index>` for such a column does not order by it either (Django's
   `sortable_by` alone only hides the header link), and no `?o=` ordering of the change
   list reaches an encrypted field.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.admin.sites import AdminSite
from django.contrib.admin.templatetags.admin_list import result_headers
from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist
from django.db.models import F
from django.db.models.constants import LOOKUP_SEP
from django.db.models.expressions import OrderBy
from django.test import Client, RequestFactory
from django.urls import reverse

from governance.fields import EncryptedField
from governance.models import DriftBaseline

pytestmark = pytest.mark.django_db

# Ordering by a relation orders by the related model's Meta.ordering, which may itself
# name a relation: followed this many levels.
MAX_RELATION_DEPTH = 4


def encrypted_target(model, path: str, depth: int = 0) -> str | None:
    """`app.Model.field` of the encrypted field that ordering `model` by `path` (a field
    name, possibly with `__` lookups and a leading "-") sorts by, or None."""
    parts = path.lstrip("-").split(LOOKUP_SEP)
    opts, field = model._meta, None
    for index, part in enumerate(parts):
        try:
            field = opts.pk if part == "pk" else opts.get_field(part)
        except FieldDoesNotExist:
            return None  # an annotation or a transform of the previous field
        if isinstance(field, EncryptedField):
            return f"{opts.label}.{field.name}"
        if not field.is_relation:
            return None
        if index < len(parts) - 1:
            opts = field.related_model._meta
    if field is not None and field.is_relation and field.related_model is not None and depth < MAX_RELATION_DEPTH:
        related = field.related_model
        for item in related._meta.ordering or ():
            found = ordering_target(related, item, depth + 1)
            if found:
                return found
    return None


def field_names_in(expression: Any) -> list[str]:
    """Every F() name inside an ordering expression."""
    if isinstance(expression, F):
        return [expression.name]
    names = []
    for source in getattr(expression, "get_source_expressions", lambda: [])():
        if source is not None:
            names += field_names_in(source)
    return names


def ordering_target(model, item: Any, depth: int = 0) -> str | None:
    """As encrypted_target, for one ordering item (a string, an F or an expression)."""
    if isinstance(item, str):
        return encrypted_target(model, item, depth)
    for name in field_names_in(item.expression if isinstance(item, OrderBy) else item):
        found = encrypted_target(model, name, depth)
        if found:
            return found
    return None


def column_order_field(model_admin: admin.ModelAdmin, name: Any) -> Any:
    """What Django would order by for list_display item `name` if it were sortable (as
    ChangeList.get_ordering_field, ignoring sortable_by): a model field's name, or the
    `admin_order_field` of a callable, admin method or model attribute/property; None if
    the column cannot be sorted at all."""
    try:
        return model_admin.model._meta.get_field(name).name
    except (FieldDoesNotExist, TypeError, AttributeError):
        pass
    if callable(name):
        attr = name
    elif hasattr(model_admin, name):
        attr = getattr(model_admin, name)
    else:
        attr = getattr(model_admin.model, name, None)
    if isinstance(attr, property):
        attr = attr.fget
    return getattr(attr, "admin_order_field", None)


def encrypted_columns(model_admin: admin.ModelAdmin) -> dict[Any, str]:
    """list_display item -> the encrypted field sorting by it would order by."""
    found = {}
    for name in model_admin.list_display:
        order_field = column_order_field(model_admin, name)
        target = ordering_target(model_admin.model, order_field) if order_field else None
        if target:
            found[name] = target
    return found


def registered_admins() -> list[admin.ModelAdmin]:
    return list(admin.site._registry.values())


def admin_id(model_admin: admin.ModelAdmin) -> str:
    return f"{model_admin.model._meta.label}:{type(model_admin).__name__}"


ADMINS = registered_admins()


@pytest.fixture
def superuser(db):
    return get_user_model().objects.create_superuser("sorter", "sorter@example.com", None)  # no hashing: fast


@pytest.fixture
def admin_request(superuser):
    def make(model_admin: admin.ModelAdmin, **params):
        opts = model_admin.model._meta
        request = RequestFactory().get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"), params,
                                       secure=True)
        request.user = superuser
        return request
    return make


# --- the detector itself (so the registry-wide tests cannot pass vacuously) ----------------

def test_the_detector_finds_the_known_encrypted_columns():
    found = {(type(model_admin).__name__, name) for model_admin in ADMINS
             for name in encrypted_columns(model_admin)}

    assert {("DriftBaselineAdmin", "created_by"), ("TelemetryEventAdmin", "actor"),
            ("ConfigurationVersionAdmin", "author"), ("CalibrationProposalAdmin", "proposed_by"),
            ("WorkflowTransitionAdmin", "triggered_by"), ("WorkflowCheckpointAdmin", "created_by")} <= found


def test_the_detector_follows_admin_order_field_and_relations():
    class Unsafe(admin.ModelAdmin):
        list_display = ("source", "created_by", "who", "customer")

        @admin.display(ordering="-created_by")
        def who(self, obj):
            return obj.created_by

    model_admin = Unsafe(DriftBaseline, AdminSite())

    assert encrypted_columns(model_admin) == {"created_by": "governance.DriftBaseline.created_by",
                                             "who": "governance.DriftBaseline.created_by"}
    assert ordering_target(DriftBaseline, "customer__name") is None
    assert ordering_target(DriftBaseline, F("created_by").desc()) == "governance.DriftBaseline.created_by"


def test_an_admin_without_sortable_by_is_caught(admin_request):
    """What the registry-wide test below reports for a new admin that forgot sortable_by."""
    class Forgetful(admin.ModelAdmin):
        list_display = ("customer", "source", "created_by", "created_at")

    model_admin = Forgetful(DriftBaseline, AdminSite())
    sortable = model_admin.get_sortable_by(admin_request(model_admin))

    assert [name for name in encrypted_columns(model_admin) if name in sortable] == ["created_by"]


# --- every registered admin ---------------------------------------------------------------

@pytest.mark.parametrize("model_admin", ADMINS, ids=admin_id)
def test_no_encrypted_column_is_sortable(model_admin, admin_request):
    sortable = set(model_admin.get_sortable_by(admin_request(model_admin)))

    offending = {name: target for name, target in encrypted_columns(model_admin).items() if name in sortable}

    assert offending == {}, (f"{admin_id(model_admin)} lets users sort by encrypted column(s) {offending} "
                             "(the order would be the ciphertext's): leave them out of sortable_by")


@pytest.mark.parametrize("model_admin", ADMINS, ids=admin_id)
def test_the_other_columns_stay_sortable(model_admin, admin_request):
    sortable = set(model_admin.get_sortable_by(admin_request(model_admin)))
    encrypted = encrypted_columns(model_admin)

    should_sort = [name for name in model_admin.list_display
                   if isinstance(name, str) and name not in encrypted and column_order_field(model_admin, name)]

    assert [name for name in should_sort if name not in sortable] == []


@pytest.mark.parametrize("model_admin", ADMINS, ids=admin_id)
def test_no_change_list_ordering_reaches_an_encrypted_field(model_admin, admin_request):
    """Every `?o=<index>` (ascending and descending), and the default ordering."""
    model = model_admin.model
    columns = model_admin.get_changelist_instance(admin_request(model_admin)).list_display
    for o in [None, *(f"{sign}{index}" for index in range(len(columns)) for sign in ("", "-"))]:
        params = {} if o is None else {"o": o}
        changelist = model_admin.get_changelist_instance(admin_request(model_admin, **params))

        reached = [target for item in changelist.queryset.query.order_by
                   if (target := ordering_target(model, item))]

        assert reached == [], f"{admin_id(model_admin)} ?o={o} orders by {reached}"


@pytest.mark.parametrize("model_admin", [a for a in ADMINS if encrypted_columns(a)], ids=admin_id)
def test_requesting_an_encrypted_column_order_is_ignored_over_http(model_admin, superuser):
    """The admin page itself: ?o= naming an encrypted column answers 200, shows no sort
    link for it and does not order by it."""
    client = Client()
    client.force_login(superuser)
    opts = model_admin.model._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    columns = client.get(url, secure=True).context["cl"].list_display
    encrypted = encrypted_columns(model_admin)
    for name in encrypted:
        index = columns.index(name)
        for o in (f"{index}", f"-{index}"):
            response = client.get(url, {"o": o}, secure=True)

            assert response.status_code == 200, response.content[:500]
            changelist = response.context["cl"]
            assert [t for item in changelist.queryset.query.order_by
                    if (t := ordering_target(model_admin.model, item))] == []
            headers = list(result_headers(changelist))  # what the page's table header shows
            assert not headers[index]["sortable"] and not headers[index].get("sorted")
            linked = {part.lstrip("-") for header in headers if header["sortable"]
                      for key in ("url_primary", "url_remove", "url_toggle")
                      for query in re.findall(r"[?&]o=([^&]*)", header.get(key, "")) for part in query.split(".")}
            assert str(index) not in linked, linked  # no other column's sort link carries it
