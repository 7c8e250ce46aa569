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
from django.db.models import F, Sum
from django.utils import timezone

from calibration.versions import active_config
from .api.errors import ApiError
from .engine.decide import pcw_decide, risk_check
from .engine.drift import DriftMonitor
from .engine.inputs import ProposalInput
from .engine.replay import pack_replay
from .models import ApiKey, Customer, Decision, SandboxUsage, Tier, UsageCounter
from .telemetry import Event, emit


@dataclass(frozen=True)
class CallContext:
    """Who is calling and how: the tenant, its key, the channel and the request id."""

    customer: Customer
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


def _enforce_monthly_quota(customer: Customer, month: str) -> None:
    """Monthly evaluation quota (429 *without* Retry-After: retrying will not help). Called
    after this call was counted, inside its transaction: going over rolls the call back."""
    used = (UsageCounter.objects.filter(customer=customer, month=month, kind=UsageCounter.Kind.EVALUATION)
            .aggregate(total=Sum("count"))["total"] or 0)
    if used > customer.tier.monthly_evaluations:
        raise ApiError(429, "quota_exceeded",
                       f"Monthly quota of {customer.tier.monthly_evaluations} evaluations for {month} is used up")


_COUNT_SQL = (f"INSERT INTO {UsageCounter._meta.db_table} (customer_id, month, kind, channel, count) "
              f"VALUES (%s, %s, %s, %s, 1) ON CONFLICT (customer_id, month, kind, channel) "
              f"DO UPDATE SET count = {UsageCounter._meta.db_table}.count + 1")


def _count_call(customer: Customer, month: str, kind: str, channel: str) -> None:
    """One atomic upsert: concurrent calls of a tenant queue on the counter row only."""
    with connection.cursor() as cursor:
        cursor.execute(_COUNT_SQL, [customer.pk, month, kind, channel])


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


def evaluate_proposal(ctx: CallContext, proposal: ProposalInput, *, idempotency_key: str = "") -> dict[str, Any]:
    """Decide on a proposal, record it and count it against the tenant's quota."""
    started = time.perf_counter()
    now = timezone.now()
    month = month_of(now)
    customer = ctx.customer
    with transaction.atomic():
        _count_call(customer, month, UsageCounter.Kind.EVALUATION, ctx.channel)
        _enforce_monthly_quota(customer, month)
        decision, drift = _decide(proposal, customer, now)
        body = decision.to_dict()
        Decision.objects.create(
            decision_id=body["decision_id"], customer=customer, api_key=ctx.api_key, channel=ctx.channel,
            created_at=now, status=body["status"], shadow=proposal.shadow_mode,
            config_version=body["config_version"], idempotency_key=idempotency_key or "",
            request_id=ctx.request_id, **_decision_columns(proposal, drift, body["status"]), response=body)
        emit(Event.DECISION_MADE, actor=proposal.agent_id, subject=body["decision_id"], request_id=ctx.request_id,
             data={"status": body["status"], "shadow": proposal.shadow_mode, "channel": ctx.channel,
                   "config_version": body["config_version"], "tenant": customer.customer_id,
                   "gates": {name: gate["passed"] for name, gate in body["gates"].items()},
                   "latency_seconds": time.perf_counter() - started})
    return body


def _decision_columns(proposal: ProposalInput, drift, status: str) -> dict[str, Any]:
    utility = proposal.utility_result
    return {
        "proposal_summary": proposal.proposal_summary,
        "agent_id": proposal.agent_id,
        "session_id": proposal.session_id,
        "metadata": proposal.metadata,
        "estimated_impact": proposal.estimated_impact,
        "requires_human_approval": proposal.requires_human_approval,
        "risk_baseline": proposal.risk_baseline,
        "risk_proposed": proposal.risk_proposed,
        "profit_baseline": proposal.profit_baseline,
        "profit_proposed": proposal.profit_proposed,
        "novelty_score": proposal.novelty_score,
        "complexity_score": proposal.complexity_score,
        "quality_score": proposal.quality_score,
        "has_zero_subscore": any(s == 0.0 for s in proposal.quality_subscores),
        "utility_mean": utility.mean if utility else None,
        "utility_std_error": utility.std_error if utility else None,
        "drift_status": drift.status if drift is not None else "",
        "replay_vector": pack_replay(proposal, status, drift.kl_divergence if drift is not None else None),
        "request_data": {
            "phase": proposal.phase,
            "change_type": proposal.change_type,
            "quality_subscores": list(proposal.quality_subscores),
            "time_sensitive": proposal.time_sensitive,
            "reversible": proposal.reversible,
            "shadow_mode": proposal.shadow_mode,
            "drift_baseline_data": _as_list(proposal.drift_baseline_data),
            "drift_current_data": _as_list(proposal.drift_current_data),
        },
    }


def _as_list(values):
    return None if values is None else list(values)


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
    rows = UsageCounter.objects.filter(customer=customer, month=month).values_list("kind", "channel", "count")
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
