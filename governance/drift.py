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
from workflows.roles import Role

from .engine.drift import DriftMonitor, NullThresholds, null_thresholds
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
    one header line is allowed when numbers follow it). Errors name the file and the
    offending position, and say what was expected there."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DriftError(f"{filename}: not a UTF-8 text file") from None
    if text.lstrip().startswith(("[", "{")):
        try:
            data = loads_strict(text, max_depth=settings.AEGIS_JSON_MAX_DEPTH)
        except JsonInputError as exc:
            raise DriftError(f"{filename}: {exc.message}") from None
        except ValueError as exc:
            raise DriftError(f"{filename}: not a valid JSON array ({exc})") from None
        if not isinstance(data, list):
            raise DriftError(f"{filename}: a JSON object, not an array; expected numbers such as [0.12, 0.3]")
        return [_number(value, f"{filename}: item {i}") for i, value in enumerate(data, start=1)]
    values: list[float] = []
    header: tuple[int, str] | None = None  # (column, cell) of a skipped first line
    for line_number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [cell for part in row for cell in part.split()]
        for column, cell in enumerate(cells, start=1):
            try:
                number = float(cell)
            except ValueError:
                if line_number == 1 and not values:
                    header = (column, cell)
                    break  # a header line: words, not numbers
                raise DriftError(f"{filename}: line {line_number}, value {column} ({cell!r}) is not a number") from None
            if not math.isfinite(number):
                raise DriftError(f"{filename}: line {line_number}, value {column} ({cell!r}) is not a finite "
                                 f"number")
            values.append(number)
    if header is not None and not values:
        column, cell = header
        raise DriftError(f"{filename}: line 1, value {column} ({cell!r}) is not a number, and no numbers follow; "
                         f"expected numbers separated by commas, spaces or newlines, or a JSON array")
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


def _measure(customer: Customer, day: date) -> tuple[dict[str, Any] | None, str]:
    """The fields of the tenant's report for `day` (the window ending at the day's end)
    under its current baseline and the active configuration, or (None, reason)."""
    baseline = DriftBaseline.objects.filter(customer=customer).first()
    if baseline is None:
        return None, f"{customer.name}: no drift baseline is set"
    version, config = active_config()
    until = _day_start(day + timedelta(days=1))
    current = current_sample(customer, until - timedelta(days=config.kl_window_days), until)
    result = DriftMonitor.from_config(baseline.values, config).check(current)
    if not result.computed:
        return None, result.message
    return {"baseline": baseline, "kl_divergence": result.kl_divergence, "status": result.status,
            "action": result.action, "message": result.message, "n_current": result.n_current,
            "n_baseline": result.n_baseline, "tau_warning": config.tau_warning,
            "tau_critical": config.tau_critical, "config_version": version}, result.message


def _emit_report(report: DriftReport) -> None:
    emit(Event.DRIFT_REPORT, actor="aegis-drift", subject=report.customer.customer_id,
         data={"tenant": report.customer.customer_id, "day": report.day.isoformat(), "status": report.status,
               "kl_divergence": report.kl_divergence})
    send_after_commit(drift_reported, report_id=report.pk)


def run_drift_report(customer: Customer, day: date) -> tuple[DriftReport | None, str]:
    """The scheduled daily report of the tenant for `day`: created once, returned as it is on
    any later call (a redelivered task changes nothing). (None, reason) when it cannot be
    computed. A person recomputes a day with `rerun_drift_report`."""
    existing = DriftReport.objects.filter(customer=customer, day=day).first()
    if existing is not None:
        return existing, f"already reported for {day}"
    fields, message = _measure(customer, day)
    if fields is None:
        return None, message
    try:
        with transaction.atomic():
            report = DriftReport.objects.create(customer=customer, day=day, **fields)
            _emit_report(report)
            open_recalibration_if_sustained(customer)
    except IntegrityError:  # a concurrent run (or a redelivered task) made it first
        return DriftReport.objects.get(customer=customer, day=day), f"already reported for {day}"
    return report, message


def rerun_drift_report(customer: Customer, day: date, *, actor: Actor) -> tuple[DriftReport | None, str]:
    """A risk lead's "Run drift check now": the report for `day` computed afresh from the
    current baseline and configuration. A report already stored for the day is replaced in
    place, and the replacement is recorded (drift.report_replaced, with the old and the new
    baseline, status and KL) in the same transaction. (None, reason) when nothing can be computed."""
    if Role.RISK_LEAD not in actor.roles:
        raise DriftError("running the drift check needs the Risk Lead role")
    with transaction.atomic():
        Customer.objects.select_for_update().get(pk=customer.pk)  # one run of a tenant at a time
        fields, message = _measure(customer, day)
        if fields is None:
            return None, message
        report = DriftReport.objects.select_for_update().filter(customer=customer, day=day).first()
        if report is None:
            report = DriftReport.objects.create(customer=customer, day=day, **fields)
            _emit_report(report)
        else:
            old = _replaced_facts(report)
            for name, value in fields.items():
                setattr(report, name, value)
            report.created_at = timezone.now()
            report.save()
            emit(Event.DRIFT_REPORT_REPLACED, actor=actor.name, subject=customer.customer_id,
                 data={"tenant": customer.customer_id, "day": day.isoformat(), "old": old,
                       "new": _replaced_facts(report)})
            message = f"replaced the day's earlier report (was {old['status']}, KL {old['kl_divergence']:.4f}): {message}"
        open_recalibration_if_sustained(customer)
    return report, message


def _replaced_facts(report: DriftReport) -> dict[str, Any]:
    """What the audit record of a replacement keeps of each side."""
    return {"status": report.status, "kl_divergence": report.kl_divergence, "baseline_id": report.baseline_id,
            "n_current": report.n_current, "tau_warning": report.tau_warning, "tau_critical": report.tau_critical,
            "config_version": report.config_version}


def sustained(reports: list[DriftReport], days: int) -> bool:
    """The newest `days` reports are warning-or-worse and on consecutive days, ending with the newest."""
    if len(reports) < days:
        return False
    newest = reports[:days]
    return all(r.status in WARNING_OR_WORSE for r in newest) and all(
        (newest[i].day - newest[i + 1].day).days == 1 for i in range(days - 1))


def suggested_taus(report: DriftReport, bins: int) -> NullThresholds:
    """tau_warning / tau_critical from the null distribution of the report's baseline at
    the report's sample size: what KL looks like with no drift, never the drifted days
    themselves (engine.drift.null_thresholds). Seeded by baseline and day, so the same
    report always suggests the same values."""
    return null_thresholds(report.baseline.values, report.n_current, bins=bins,
                           seed=(report.baseline_id, report.day.toordinal()))


def open_recalibration_if_sustained(customer: Customer):
    """After kl_drift.sustained_days consecutive warning-or-worse reports, open one
    calibration proposal from `drift-monitor` (never applied without a human); none while
    a drift-monitor proposal is still open."""
    from calibration import services as calibration_services
    from calibration.models import CalibrationProposal

    _, config = active_config()
    reports = list(DriftReport.objects.filter(customer=customer).select_related("baseline")
                   .order_by("-day")[: config.drift_sustained_days])
    if not sustained(reports, config.drift_sustained_days):
        return None
    open_proposals = CalibrationProposal.objects.filter(workflow__current_state__in=calibration_services.OPEN_STATES)
    if any(p.proposed_by == DRIFT_MONITOR_ACTOR for p in open_proposals.iterator()):  # encrypted: no SQL lookup
        return None
    suggested = suggested_taus(reports[0], config.kl_bins)
    warning, critical = suggested.tau_warning, suggested.tau_critical
    if (warning, critical) == (config.tau_warning, config.tau_critical):
        return None
    evidence = ", ".join(f"{r.day}: KL {r.kl_divergence:.4f} ({r.status})" for r in reversed(reports))
    justification = (
        f"Sustained drift for {customer.name}: {config.drift_sustained_days} consecutive daily reports at warning "
        f"or worse ({evidence}). Suggested thresholds from the null distribution (KL without drift): "
        f"{suggested.repeats:,} pairs of samples drawn from the baseline's histogram, a baseline of "
        f"n = {suggested.n_baseline} and a day of n = {suggested.n_current} (the newest report's sample size), "
        f"measured like the daily check ({suggested.bins} bins, +0.5 per bin); "
        f"90th percentile {suggested.warning_percentile_kl:.6g} → tau_warning {warning:g} "
        f"(now {config.tau_warning:g}), 99th percentile {suggested.critical_percentile_kl:.6g} → tau_critical "
        f"{critical:g} (now {config.tau_critical:g}). With these, about 10 % of days without drift would warn and "
        f"1 % would be critical. If the drift is real, a new baseline is the remedy, not higher thresholds.")
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
