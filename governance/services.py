"""Governance verbs: evaluate, risk-check, keys, tenants, usage. Views, commands and the
admin call these; they never change state themselves. Each verb checks tenancy and limits
itself, so no caller can skip them."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from calibration.versions import active_config
from .api.errors import ApiError
from .engine.decide import pcw_decide, risk_check
from .engine.drift import DriftMonitor
from .engine.inputs import ProposalInput
from workflows.machines import Actor
from workflows.roles import Role
from workflows.persistence.models import WorkflowInstance
from workflows.services import WorkflowError

from . import decisions
from .models import ApiKey, Customer, Decision, SandboxUsage, Tier, UsageCounter
from .telemetry import Event, emit


@dataclass(frozen=True)
class CallContext:
    """Who is calling and how: the tenant, its key, the channel and the request id."""

    customer: Customer | None  # None: a signed-in person submitting without a tenant
    api_key: ApiKey | None
    channel: str = Decision.Channel.API
    request_id: str = ""


def month_of(moment) -> str:
    return moment.strftime("%Y-%m")


# --- limits -----------------------------------------------------------------------------

def enforce_rate_limit(customer: Customer) -> None:
    """Per-minute fixed window per tenant (429 with a numeric Retry-After)."""
    now = timezone.now()
    window = int(now.timestamp() // 60)
    cache_key = f"aegis:rate:{customer.pk}:{window}"
    cache.add(cache_key, 0, timeout=120)
    try:
        count = cache.incr(cache_key)
    except ValueError:  # evicted between add and incr
        cache.set(cache_key, 1, timeout=120)
        count = 1
    limit = customer.tier.rate_per_minute
    if count > limit:
        retry_after = max(1, math.ceil(60 - now.timestamp() % 60))
        raise ApiError(429, "rate_limited",
                       f"Rate limit of {limit} requests per minute exceeded; retry in {retry_after} s",
                       headers={"Retry-After": str(retry_after)})


_COUNT_SQL = (f"INSERT INTO {UsageCounter._meta.db_table} (customer_id, month, kind, channel, count) "
              f"VALUES (%s, %s, %s, %s, 1), (%s, %s, %s, %s, 1) ON CONFLICT (customer_id, month, kind, channel) "
              f"DO UPDATE SET count = {UsageCounter._meta.db_table}.count + 1 RETURNING channel, count")


def _count_call(customer: Customer, month: str, kind: str, channel: str) -> int:
    """Count one call on its channel's row and on the month's all-channels row, in one
    atomic upsert; returns the month's count of `kind` over all channels. Concurrent calls
    of a tenant queue on these rows only, until their transaction ends."""
    with connection.cursor() as cursor:
        cursor.execute(_COUNT_SQL, [customer.pk, month, kind, channel,
                                    customer.pk, month, kind, UsageCounter.ALL_CHANNELS])
        return next(count for row_channel, count in cursor.fetchall() if row_channel == UsageCounter.ALL_CHANNELS)


def count_evaluation(ctx: CallContext, now) -> None:
    """Count a tenant's evaluation made at `now` and enforce the monthly quota (429
    *without* Retry-After: retrying will not help). Going over raises inside the call's
    transaction, which rolls the call and its count back. Make it the transaction's last
    write: the counter rows stay locked until commit, so the tenant's concurrent calls wait
    only for that commit, not for a whole evaluation."""
    customer, month = ctx.customer, month_of(now)
    used = _count_call(customer, month, UsageCounter.Kind.EVALUATION, ctx.channel)
    if used > customer.tier.monthly_evaluations:
        raise ApiError(429, "quota_exceeded",
                       f"Monthly quota of {customer.tier.monthly_evaluations} evaluations for {month} is used up")


# --- evaluation -------------------------------------------------------------------------

def _drift_for(proposal: ProposalInput, config, customer: Customer | None, now):
    """Drift against the proposal's baseline: its own current sample, or (for a tenant)
    the tenant's risk_proposed values of the last kl_window_days plus this proposal."""
    if proposal.drift_baseline_data is None:
        return None
    monitor = DriftMonitor.from_config(proposal.drift_baseline_data, config)
    if proposal.drift_current_data is not None:
        return monitor.check(proposal.drift_current_data)
    current: list[float] = []
    if customer is not None:
        since = now - timedelta(days=config.kl_window_days)
        current = list(Decision.objects.filter(customer=customer, created_at__gte=since)
                       .values_list("risk_proposed", flat=True))
    current.append(proposal.risk_proposed)
    return monitor.check(current)


def _decide(proposal: ProposalInput, customer: Customer | None, now):
    version, config = active_config()
    drift = _drift_for(proposal, config, customer, now)
    decision = pcw_decide(proposal, config, drift=drift, config_version=version, now=now)
    return decision, drift


def evaluate_proposal(ctx: CallContext, proposal: ProposalInput, *, idempotency_key: str = "",
                      now=None, caller_counts: bool = False) -> dict[str, Any]:
    """Decide on a proposal, record it (with its review workflow when a person must act)
    and count it against the tenant's quota; returns the Decision JSON.

    `caller_counts=True` is for a caller that runs this in its own transaction, which rolls
    back whole on any error, and calls `count_evaluation(ctx, now)` as that transaction's
    last write (the /evaluate view, after the Idempotency-Key's record): no savepoint is
    needed then, and the tenant's counter rows are locked only for the final commit."""
    actor = (decisions.key_actor(ctx.api_key) if ctx.api_key is not None else
             Actor(name=f"tenant:{ctx.customer.customer_id}", roles=frozenset({Role.INTEGRATION})))
    decision = _evaluate(ctx, proposal, actor=actor, idempotency_key=idempotency_key, always_open_workflow=False,
                         now=now, count=not caller_counts)
    return {**decision.response, **decisions.review_fields(decision, override=None)}


def submit_proposal(proposal: ProposalInput, *, actor: Actor, customer: Customer | None = None,
                    api_key: ApiKey | None = None, request_id: str = "", now=None) -> WorkflowInstance:
    """The proposal-workflow path (POST /api/workflows/proposals): the same decision as
    /evaluate, always with its proposal workflow (a proceed one is approved at once). A
    tenant's call counts against its quota; a person may submit without a tenant."""
    if proposal.shadow_mode:
        raise WorkflowError("shadow_mode: a shadow proposal is recorded only and opens no workflow; "
                            "send it to POST /evaluate", WorkflowError.INVALID)
    ctx = CallContext(customer=customer, api_key=api_key, request_id=request_id)
    decision = _evaluate(ctx, proposal, actor=actor, idempotency_key="", always_open_workflow=True, now=now)
    return decision.workflow


def _evaluate(ctx: CallContext, proposal: ProposalInput, *, actor: Actor, idempotency_key: str,
              always_open_workflow: bool, now=None, count: bool = True) -> Decision:
    started = time.perf_counter()
    now = now or timezone.now()
    customer = ctx.customer
    with transaction.atomic(savepoint=count):
        engine_decision, drift = _decide(proposal, customer, now)
        body = engine_decision.to_dict()
        decision = decisions.record(
            proposal, body, drift=drift, customer=customer, api_key=ctx.api_key, channel=ctx.channel,
            actor=actor, idempotency_key=idempotency_key or "",
            request_id=ctx.request_id, now=now,
            open_workflow=always_open_workflow or decisions.needs_review(body["status"], proposal.shadow_mode))
        emit(Event.DECISION_MADE, actor=proposal.agent_id, subject=body["decision_id"], request_id=ctx.request_id,
             data={"status": body["status"], "shadow": proposal.shadow_mode, "channel": ctx.channel,
                   "config_version": body["config_version"],
                   "tenant": customer.customer_id if customer is not None else None,
                   "workflow_id": str(decision.workflow.workflow_id) if decision.workflow else None,
                   "gates": {name: gate["passed"] for name, gate in body["gates"].items()},
                   "latency_seconds": time.perf_counter() - started})
        if customer is not None and count:
            count_evaluation(ctx, now)
    return decision


def deployment_stage() -> str:
    return settings.AEGIS_STAGE


def sandbox_evaluate(client_ip: str, proposal: ProposalInput) -> dict[str, Any]:
    """Unauthenticated trial: a real decision, not stored, `SANDBOX_DAILY_LIMIT` per IP a day."""
    now = timezone.now()
    limit = settings.SANDBOX_DAILY_LIMIT
    with transaction.atomic():
        usage, _ = SandboxUsage.objects.select_for_update().get_or_create(client_ip=client_ip, day=now.date())
        if usage.count >= limit:
            raise ApiError(429, "sandbox_limit",
                           f"Sandbox limit of {limit} evaluations per day reached; use an API key")
        SandboxUsage.objects.filter(pk=usage.pk).update(count=F("count") + 1)
    decision, _ = _decide(proposal, None, now)
    return {**decision.to_dict(), "sandbox": True, "remaining": limit - usage.count - 1}


def quick_risk_check(ctx: CallContext, risk_score: Any, threshold: Any) -> dict[str, Any]:
    result = risk_check(risk_score, threshold)
    with transaction.atomic():
        _count_call(ctx.customer, month_of(timezone.now()), UsageCounter.Kind.RISK_CHECK, ctx.channel)
    return result


# --- tenants and keys -------------------------------------------------------------------

def create_customer(name: str, *, tier: Tier, email: str = "", company: str = "",
                    key_name: str = "default") -> tuple[Customer, ApiKey, str]:
    """A new tenant with its first API key (plaintext returned once)."""
    with transaction.atomic():
        customer = Customer.objects.create(name=name, tier=tier, email=email, company=company)
        key, plaintext = ApiKey.generate(customer, key_name)
        key.save()
    return customer, key, plaintext


def create_api_key(customer: Customer, name: str) -> tuple[ApiKey, str]:
    """A new key for `customer`; refused (409) beyond the tier's max_keys."""
    with transaction.atomic():
        locked = Customer.objects.select_for_update().select_related("tier").get(pk=customer.pk)
        active = ApiKey.objects.filter(customer=locked, revoked_at__isnull=True).count()
        if active >= locked.tier.max_keys:
            raise ApiError(409, "key_limit",
                           f"Tier {locked.tier.name!r} allows {locked.tier.max_keys} active keys; revoke one first")
        key, plaintext = ApiKey.generate(locked, name)
        key.save()
    return key, plaintext


def revoke_api_key(customer: Customer | None, key_id: str) -> ApiKey:
    """Revoke a key. With `customer`, only that tenant's keys are visible (404 otherwise)."""
    with transaction.atomic():
        keys = ApiKey.objects.select_for_update()
        if customer is not None:
            keys = keys.filter(customer=customer)
        key = keys.filter(key_id=key_id).first()
        if key is None:
            raise ApiError(404, "not_found", f"No API key {key_id!r}")
        if key.revoked_at is None:
            key.revoked_at = timezone.now()
            key.save(update_fields=["revoked_at"])
    return key


def usage_report(customer: Customer, month: str) -> dict[str, Any]:
    rows = (UsageCounter.objects.filter(customer=customer, month=month).exclude(channel=UsageCounter.ALL_CHANNELS)
            .values_list("kind", "channel", "count"))
    channels = {choice: 0 for choice in Decision.Channel.values}
    totals = {kind: 0 for kind in UsageCounter.Kind.values}
    for kind, channel, count in rows:
        channels[channel] += count
        totals[kind] += count
    quota = customer.tier.monthly_evaluations
    evaluations = totals[UsageCounter.Kind.EVALUATION]
    return {
        "customer_id": customer.customer_id,
        "month": month,
        "total_evaluations": evaluations,
        "total_risk_checks": totals[UsageCounter.Kind.RISK_CHECK],
        "total_calls": sum(totals.values()),
        "channels": channels,
        "quota": quota,
        "quota_remaining": max(0, quota - evaluations),
        "quota_percent": round(100.0 * evaluations / quota, 2) if quota else 100.0,
    }
