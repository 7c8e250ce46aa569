"""API-key authentication: `Authorization: Bearer <key>` or `X-Api-Key: <key>`.

A valid key's row (with its tenant and tier) is remembered in the process for
AEGIS_API_KEY_CACHE_SECONDS (default 2, at most 5), so a busy integration costs no lookup
per call. Revoking a key, suspending a tenant or changing a tier is seen at once by the
process that did it (signals clear the cache) and by every other worker within that time.
Unknown keys are never remembered: a key created a moment ago works on every worker.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone
from rest_framework import authentication, exceptions

from governance.decisions import key_actor
from governance.models import ApiKey, Customer, Tier, hash_api_key
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


class RecentKeys:
    """Valid keys looked up in the last few seconds, by key hash (see the module docstring).
    The cached rows are shared by the process's threads: read them, never change them."""

    MAX_ENTRIES = 10_000

    def __init__(self):
        self._entries: dict[str, tuple[float, ApiKey]] = {}
        self._lock = threading.Lock()

    def get(self, key_hash: str) -> ApiKey | None:
        entry = self._entries.get(key_hash)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, key_hash: str, key: ApiKey) -> None:
        seconds = settings.AEGIS_API_KEY_CACHE_SECONDS
        if seconds <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
            self._entries[key_hash] = (time.monotonic() + seconds, key)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


recent_keys = RecentKeys()


@receiver([post_save, post_delete], sender=ApiKey)
@receiver([post_save, post_delete], sender=Customer)
@receiver([post_save, post_delete], sender=Tier)
def _forget_keys(**kwargs):
    recent_keys.clear()


def valid_key(token: str) -> ApiKey | None:
    """The active key `token` names, with its active tenant and tier, or None."""
    key_hash = hash_api_key(token)
    key = recent_keys.get(key_hash)
    if key is None:
        key = (ApiKey.objects.select_related("customer__tier")
               .filter(key_hash=key_hash, revoked_at__isnull=True).first())
        if key is None or key.customer.status != Customer.Status.ACTIVE:
            return None
        recent_keys.put(key_hash, key)
    now = timezone.now()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
        key.last_used_at = now  # at most once a minute (per process)
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return key


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        token = presented_key(request)
        if token is None:
            return None
        key = valid_key(token) if token else None
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid API key")
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
