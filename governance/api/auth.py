"""API-key authentication: `Authorization: Bearer <key>` or `X-Api-Key: <key>`."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone
from rest_framework import authentication, exceptions

from governance.decisions import key_actor
from governance.models import ApiKey, Customer, hash_api_key
from workflows.machines import Actor
from workflows.services import actor_for


@dataclass(frozen=True)
class ApiPrincipal:
    """Who is calling: a tenant through one of its keys (stands in for request.user)."""

    customer: Customer
    api_key: ApiKey

    is_authenticated = True
    is_anonymous = False

    @property
    def pk(self):  # DRF's throttles and logs expect a user-like identity
        return f"key:{self.api_key.key_id}"


def presented_key(request) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return ""
    return request.META.get("HTTP_X_API_KEY")


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        token = presented_key(request)
        if token is None:
            return None
        key = (ApiKey.objects.select_related("customer__tier")
               .filter(key_hash=hash_api_key(token), revoked_at__isnull=True).first()) if token else None
        if key is None or key.customer.status != Customer.Status.ACTIVE:
            raise exceptions.AuthenticationFailed("Invalid API key")
        now = timezone.now()
        if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)  # at most once a minute
        return ApiPrincipal(customer=key.customer, api_key=key), key

    def authenticate_header(self, request):
        return 'Bearer realm="aegis"'


def acting_as(request) -> tuple[Actor, Customer | None]:
    """(actor, tenant) for an /api/ request: a tenant's key acts for that tenant alone; a
    signed-in person acts with the roles of their groups and no tenant (sees every one)."""
    user = request.user
    if isinstance(user, ApiPrincipal):
        return key_actor(user.api_key), user.customer
    return actor_for(user), None
