"""Attestation pages under /decisions/attestations/ (staff with `attestations.view_attestation`):
every stored attestation, newest first, filtered by tenant; and one attestation with what it
signs, its two keys and a verification verdict computed when the page is read.

The `/attestations/...` paths are the client API's (attestations.urls); these are pages, so
their errors are the project's HTML pages (governance.api.errors.PAGE_PREFIXES has
/decisions/). The pages change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django import forms
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404
from django.shortcuts import render
from django.utils import timezone

from governance import decisions
from governance.decision_views import staff_required
from governance.models import Customer
from governance.telemetry import holders_of
from governance.telemetry_views import KeysetPagedForm, page_links
from workflows.services import WorkflowError

from . import audit, keys, services
from .envelope import ED25519_PREFIX, KeyRing
from .models import Attestation, SigningKeyPair

VIEW_PERMISSION = "attestations.view_attestation"
PAGE_SIZE = 50
VALID, EXPIRED = "valid", "expired"


def check_can_view(user) -> None:
    """Raise PermissionDenied (the 403 page, saying whom to ask) unless `user` may read attestations."""
    if not user.has_perm(VIEW_PERMISSION):
        raise PermissionDenied(f"Attestations need the permission {VIEW_PERMISSION} ({holders_of(VIEW_PERMISSION)}).")


def verdict(attestation: Attestation, ring: KeyRing, now: datetime) -> str:
    """"valid", "expired", or the error class: the stored envelope checked with the server's
    keyring for what it records (services.stored_error), then against the clock."""
    error = services.stored_error(attestation, ring)
    if error is not None:
        return error.value
    return EXPIRED if attestation.expires <= now else VALID


# --- the list -----------------------------------------------------------------------------

class AttestationFilterForm(KeysetPagedForm):
    tenant = forms.ChoiceField(label="Tenant", required=False)
    cursor = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tenant"].choices = [("", "any")] + [(c.customer_id, c.name)
                                                         for c in Customer.objects.order_by("name")]


@dataclass(frozen=True)
class AttestationPage:
    attestations: list[Attestation]
    next_before: tuple[datetime, int] | None


def list_attestations(*, tenant: str | None = None, before: tuple[datetime, int] | None = None,
                      limit: int | None = None) -> AttestationPage:
    """Stored attestations, newest first (keyset on created_at, id), of one tenant or all;
    `limit` defaults to PAGE_SIZE (read at call time)."""
    limit = PAGE_SIZE if limit is None else limit
    rows = Attestation.objects.select_related("customer").order_by("-created_at", "-id")
    if tenant:
        rows = rows.filter(customer__customer_id=tenant)
    if before is not None:
        created_at, pk = before
        rows = rows.filter(Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=pk))
    found = list(rows[:limit + 1])
    more = len(found) > limit
    found = found[:limit]
    return AttestationPage(found, (found[-1].created_at, found[-1].pk) if more else None)


@staff_required
def attestation_list(request):
    check_can_view(request.user)  # before reading the filters: 403 whatever they are
    form = AttestationFilterForm(request.GET if request.GET else None)
    page = None
    if not form.is_bound:
        page = list_attestations()
    elif form.is_valid():
        page = list_attestations(tenant=form.cleaned_data["tenant"] or None, before=form.cleaned_data["cursor"])
    rows = []
    if page is not None and page.attestations:
        ring, now = keys.keyring(), timezone.now()
        rows = [{"attestation": a, "verdict": verdict(a, ring, now)} for a in page.attestations]
    next_query, first_query = page_links(request, page.next_before if page is not None else None)
    return render(request, "attestations/attestations.html", {
        "form": form, "page": page, "rows": rows, "next_query": next_query, "first_query": first_query,
        "page_size": PAGE_SIZE})


# --- one attestation ------------------------------------------------------------------------

def _signatures(attestation: Attestation) -> list[dict[str, Any]]:
    """Each signature's keyid, algorithm and the status of the stored pair it belongs to."""
    environment = keys.environment_pair()
    environment_public = environment.public() if environment is not None else None
    pairs = {}
    for row in SigningKeyPair.objects.all():
        public = row.public()
        pairs[public.ed25519_keyid] = pairs[public.mldsa65_keyid] = row
    listed = []
    for signature in attestation.envelope.get("signatures") or []:
        keyid = str(signature.get("keyid", "")) if isinstance(signature, dict) else ""
        row = pairs.get(keyid)
        listed.append({"keyid": keyid, "algorithm": "Ed25519" if keyid.startswith(ED25519_PREFIX) else "ML-DSA-65",
                       "status": keys.status_of(row, environment_public) if row else "not a key of this server",
                       "pair_created_at": row.created_at if row else None,
                       "pair_retired_at": row.retired_at if row else None})
    return listed


def _dig(value: Any, *path: str | int) -> Any:
    """`value[path[0]][path[1]]…`, or None where the signed statement has no such part."""
    for step in path:
        try:
            value = value[step]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def _signed_fields(statement: dict[str, Any]) -> dict[str, Any]:
    """What the page shows from the signed statement itself (not from the stored columns,
    which the audit verification compares with it)."""
    gates = _dig(statement, "predicate", "governance", "gate_pass_states")
    return {"subject_name": _dig(statement, "subject", 0, "name"),
            "builder_id": _dig(statement, "predicate", "runDetails", "builder", "id"),
            "build_type": _dig(statement, "predicate", "buildDefinition", "buildType"),
            "gate_pass_states": gates if isinstance(gates, dict) else {},
            "nonce": _dig(statement, "predicate", "governance", "nonce")}


def _governance_decision(attestation: Attestation):
    if attestation.aegis_evaluate_decision_id is None:
        return None
    try:
        return decisions.find(attestation.aegis_evaluate_decision_id, customer=attestation.customer)
    except WorkflowError:
        return None


@staff_required
def attestation_detail(request, decision_id):
    check_can_view(request.user)  # before the lookup: a refused person learns nothing
    try:
        attestation = services.find(decision_id, customer=None)
    except WorkflowError:
        raise Http404("No such attestation") from None
    signed = audit.signed_statement(attestation)
    decision = _governance_decision(attestation)
    return render(request, "attestations/attestation_detail.html", {
        "attestation": attestation, "verdict": verdict(attestation, keys.keyring(), timezone.now()),
        **_signed_fields(signed[1] if signed else {}),
        "signatures": _signatures(attestation),
        "canonical_statement": signed[0].decode("utf-8", "replace") if signed else None,
        "decision": decision, "decision_status": decisions.effective_status(decision) if decision else None})
