"""Drift monitoring verbs (PLATFORM.md §6): baselines, daily reports, and the
recalibration proposal that sustained drift opens (it still needs a human approval)."""

from __future__ import annotations

import csv
import io
import math
from datetime import date, datetime, time, timedelta, timezone as dt_timezone
from typing import Any

import numpy as np
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from calibration.versions import active_config
from workflows.machines import Actor

from .engine.drift import DriftMonitor
from .engine.inputs import DRIFT_MAX_VALUES
from .json_limits import JsonInputError, loads_strict
from .models import Customer, Decision, DriftBaseline, DriftReport
from .signals import drift_reported, send_after_commit
from .telemetry import Event, emit

DRIFT_MONITOR_ACTOR = "drift-monitor"
WARNING_OR_WORSE = ("warning", "critical")


class DriftError(ValueError):
    """Bad baseline input or an impossible drift check; the message says what was expected."""


# --- baselines ----------------------------------------------------------------------------

def parse_baseline_file(content: bytes, filename: str) -> list[float]:
    """Numbers from an uploaded JSON array or CSV/plain text (commas, spaces or newlines;
    one header line is allowed). Errors name the file and the offending position."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DriftError(f"{filename}: not a UTF-8 text file") from None
    if text.lstrip().startswith("["):
        try:
            data = loads_strict(text, max_depth=settings.AEGIS_JSON_MAX_DEPTH)
        except JsonInputError as exc:
            raise DriftError(f"{filename}: {exc.message}") from None
        except ValueError as exc:
            raise DriftError(f"{filename}: not a valid JSON array ({exc})") from None
        return [_number(value, f"{filename}: item {i}") for i, value in enumerate(data, start=1)]
    values: list[float] = []
    for line_number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [cell for part in row for cell in part.split()]
        for column, cell in enumerate(cells, start=1):
            try:
                number = float(cell)
            except ValueError:
                if line_number == 1 and not values:
                    break  # a header line: words, not numbers
                number = math.nan
            if not math.isfinite(number):
                raise DriftError(f"{filename}: line {line_number}, value {column} ({cell!r}) is not a finite "
                                 f"number")
            values.append(number)
    return values


def _number(value: Any, where: str) -> float:
    try:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
            raise ValueError
    except (ValueError, OverflowError):
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise DriftError(f"{where} ({shown}) is not a finite number") from None
    return float(value)


def _check_sample(values: list[float], source: str) -> None:
    minimum = active_config()[1].kl_min_samples
    if len(values) < minimum:
        raise DriftError(f"{source}: {len(values)} value(s); a baseline needs at least {minimum} "
                         f"(kl_drift.min_samples)")
    if len(values) > DRIFT_MAX_VALUES:
        raise DriftError(f"{source}: {len(values)} values; a baseline holds at most {DRIFT_MAX_VALUES}")


def set_baseline(customer: Customer, values: list[float], *, actor: Actor, source: str) -> DriftBaseline:
    values = [_number(v, f"{source}: value {i}") for i, v in enumerate(values, start=1)]
    _check_sample(values, source)
    return DriftBaseline.objects.create(customer=customer, values=values, source=source, created_by=actor.name)


def set_baseline_from_decisions(customer: Customer, start: date, end: date, *, actor: Actor) -> DriftBaseline:
    """The tenant's risk_proposed values of the decisions made from `start` to `end` (inclusive)."""
    if end < start:
        raise DriftError(f"the end date {end} is before the start date {start}")
    values = current_sample(customer, _day_start(start), _day_start(end + timedelta(days=1)))
    source = f"decisions {start.isoformat()} to {end.isoformat()}"
    _check_sample(values.tolist(), source)
    return DriftBaseline.objects.create(customer=customer, values=values.tolist(), source=source,
                                        created_by=actor.name)


# --- reports ------------------------------------------------------------------------------

def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=dt_timezone.utc)


def current_sample(customer: Customer, since: datetime, until: datetime) -> np.ndarray:
    """risk_proposed of the tenant's decisions in [since, until), read straight into an array."""
    query = (Decision.objects.filter(customer=customer, created_at__gte=since, created_at__lt=until)
             .order_by().values_list("risk_proposed", flat=True))  # a histogram needs no order
    sql, params = query.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return np.fromiter((row[0] for row in cursor.fetchall()), dtype=np.float64)


def run_drift_report(customer: Customer, day: date) -> tuple[DriftReport | None, str]:
    """The tenant's drift report for `day` (the window ending at the day's end): created
    once, returned as it is on any later call. (None, reason) when it cannot be computed."""
    existing = DriftReport.objects.filter(customer=customer, day=day).first()
    if existing is not None:
        return existing, f"already reported for {day}"
    baseline = DriftBaseline.objects.filter(customer=customer).first()
    if baseline is None:
        return None, f"{customer.name}: no drift baseline is set"
    version, config = active_config()
    until = _day_start(day + timedelta(days=1))
    current = current_sample(customer, until - timedelta(days=config.kl_window_days), until)
    result = DriftMonitor.from_config(baseline.values, config).check(current)
    if not result.computed:
        return None, result.message
    try:
        with transaction.atomic():
            report = DriftReport.objects.create(
                customer=customer, day=day, baseline=baseline, kl_divergence=result.kl_divergence,
                status=result.status, action=result.action, message=result.message, n_current=result.n_current,
                n_baseline=result.n_baseline, tau_warning=config.tau_warning, tau_critical=config.tau_critical,
                config_version=version)
            emit(Event.DRIFT_REPORT, actor="aegis-drift", subject=customer.customer_id,
                 data={"tenant": customer.customer_id, "day": day.isoformat(), "status": result.status,
                       "kl_divergence": result.kl_divergence})
            send_after_commit(drift_reported, report_id=report.pk)
            open_recalibration_if_sustained(customer)
    except IntegrityError:  # a concurrent run (or a redelivered task) made it first
        return DriftReport.objects.get(customer=customer, day=day), f"already reported for {day}"
    return report, result.message


def sustained(reports: list[DriftReport], days: int) -> bool:
    """The newest `days` reports are warning-or-worse and on consecutive days, ending with the newest."""
    if len(reports) < days:
        return False
    newest = reports[:days]
    return all(r.status in WARNING_OR_WORSE for r in newest) and all(
        (newest[i].day - newest[i + 1].day).days == 1 for i in range(days - 1))


def suggested_taus(kl_history: list[float]) -> tuple[float, float]:
    """tau_warning and tau_critical from the 90th and 99th percentiles of daily KL,
    kept strictly ordered."""
    warning, critical = (float(v) for v in np.percentile(np.asarray(kl_history, dtype=float), [90, 99]))
    warning = round(max(warning, 1e-4), 4)
    critical = round(max(critical, warning * 1.05, warning + 1e-4), 4)
    return warning, critical


def open_recalibration_if_sustained(customer: Customer):
    """After kl_drift.sustained_days consecutive warning-or-worse reports, open one
    calibration proposal from `drift-monitor` (never applied without a human); none while
    a drift-monitor proposal is still open."""
    from calibration import services as calibration_services
    from calibration.models import CalibrationProposal

    _, config = active_config()
    reports = list(DriftReport.objects.filter(customer=customer).order_by("-day")[: config.drift_sustained_days])
    if not sustained(reports, config.drift_sustained_days):
        return None
    open_proposals = CalibrationProposal.objects.filter(workflow__current_state__in=calibration_services.OPEN_STATES)
    if any(p.proposed_by == DRIFT_MONITOR_ACTOR for p in open_proposals.iterator()):  # encrypted: no SQL lookup
        return None
    history = list(DriftReport.objects.filter(customer=customer).values_list("kl_divergence", flat=True))
    warning, critical = suggested_taus(history)
    if (warning, critical) == (config.tau_warning, config.tau_critical):
        return None
    evidence = ", ".join(f"{r.day}: KL {r.kl_divergence:.4f} ({r.status})" for r in reversed(reports))
    justification = (f"Sustained drift for {customer.name}: {config.drift_sustained_days} consecutive daily reports "
                     f"at warning or worse ({evidence}). Suggested from {len(history)} daily KL values: "
                     f"tau_warning = 90th percentile = {warning:g}, tau_critical = 99th percentile = {critical:g}.")
    actor = Actor(name=DRIFT_MONITOR_ACTOR, roles=frozenset())
    if warning != config.tau_warning:
        companions = {"tau_critical": critical} if critical != config.tau_critical else None
        return calibration_services.propose("tau_warning", warning, justification, actor=actor, companions=companions)
    return calibration_services.propose("tau_critical", critical, justification, actor=actor)


def drift_points(customer: Customer, days: int = 90) -> list[tuple[date, float, str]]:
    """(day, KL, status) of the tenant's reports of the last `days` days, oldest first."""
    since = timezone.now().date() - timedelta(days=days)
    return list(DriftReport.objects.filter(customer=customer, day__gte=since).order_by("day")
                .values_list("day", "kl_divergence", "status"))
