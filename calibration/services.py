"""Calibration verbs: propose, approve, reject, withdraw, apply, preview. The Calibrator, the pages,
the admin, the API and the drift task all go through these. Each step is a transition of
the proposal's `calibration` workflow, so it is hash-chained with its actor and comment;
approve and apply lock that workflow row, so each happens exactly once."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from governance.engine import CALIBRATABLE_PARAMETERS, AegisConfig, ConfigError, evaluate_batch
from governance.engine.decide import STATUSES
from governance.engine.drift import classify
from governance.engine.replay import REPLAY_FIELDS, unpack_replay
from governance.models import Decision, DriftReport
from governance.replay_packs import load_replay_rows
from governance.telemetry import Event, emit
from ledger import services as ledger
from workflows import services as workflow_services
from workflows.chain import canonical_json, sha256_hex
from workflows.machines import Actor, is_recorded_person
from workflows.roles import Role

from .models import CalibrationProposal, ConfigurationVersion
from .versions import active_config, config_of, configuration_status, content_hash, forget_newest

OPEN_STATES = ("proposed", "approved")
STEP_EVENTS = {"approve": Event.CALIBRATION_APPROVED, "reject": Event.CALIBRATION_REJECTED,
               "withdraw": Event.CALIBRATION_WITHDRAWN}
# What the pages and the admin say once a step is done.
STEP_DONE = {"approve": "Approved", "reject": "Rejected", "apply": "Applied", "withdraw": "Withdrawn"}
PREVIEW_EXAMPLES = 5
PREVIEW_DRIFT_REPORTS = 200  # listed in a preview; the counts cover every report of the window


class CalibrationError(Exception):
    """A refused calibration step; `code` is one of WorkflowError's codes."""

    def __init__(self, message: str, code: str = workflow_services.WorkflowError.INVALID):
        super().__init__(message)
        self.message = message
        self.code = code


def _from_workflow_error(exc: workflow_services.WorkflowError) -> CalibrationError:
    return CalibrationError(exc.message, exc.code)


def _checked_value(parameter: Any, value: Any) -> float:
    if not isinstance(parameter, str) or parameter not in CALIBRATABLE_PARAMETERS:
        allowed = ", ".join(sorted(CALIBRATABLE_PARAMETERS))
        raise CalibrationError(f"parameter {parameter!r} is not calibratable; choose one of: {allowed}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CalibrationError(f"{parameter}: the new value must be a number, got {value!r}")
    if not math.isfinite(value):
        raise CalibrationError(f"{parameter}: the new value must be a finite number, got {value!r}")
    return float(value)


def validate_change(parameter: Any, value: Any, *, base: AegisConfig | None = None,
                    companions: dict[str, Any] | None = None) -> tuple[str, float, AegisConfig]:
    """Check a proposed change (and the companion changes made with it) against the whole
    resulting configuration; returns (parameter, value as float, resulting config) or
    raises CalibrationError naming why."""
    value = _checked_value(parameter, value)
    changes = {parameter: value}
    for name, companion in (companions or {}).items():
        if name == parameter:
            raise CalibrationError(f"{name} is given twice")
        changes[name] = _checked_value(name, companion)
    base = base or active_config()[1]
    try:
        resulting = base.replace(**changes)
    except ConfigError as exc:
        raise CalibrationError("; ".join(f"{issue.parameter}: {issue.message}" for issue in exc.errors)) from None
    return parameter, value, resulting


def proposal_content_hash(data: dict[str, Any]) -> str:
    """What an approval covers: parameter, values, justification, proposer and base version."""
    return sha256_hex(canonical_json({key: data[key] for key in (
        "parameter", "current_value", "proposed_value", "companion_changes", "justification", "proposed_by",
        "base_version")}))


def propose(parameter: Any, new_value: Any, justification: str, *, actor: Actor, request_id: str = "",
            companions: dict[str, Any] | None = None) -> CalibrationProposal:
    """Open a proposal; `companions` are further parameters changed in the same step."""
    if not isinstance(justification, str) or not justification.strip():
        raise CalibrationError("justification is required: say why the parameter should change")
    with transaction.atomic():
        version, config = active_config()
        parameter, value, resulting = validate_change(parameter, new_value, base=config, companions=companions)
        current = getattr(config, parameter)
        if value == current:
            raise CalibrationError(f"{parameter} is already {current:g} in the active configuration v{version}")
        companion_changes = {name: {"from": getattr(config, name), "to": getattr(resulting, name)}
                             for name in sorted(companions or {})}
        proposal = CalibrationProposal(parameter=parameter, current_value=current, proposed_value=value,
                                       companion_changes=companion_changes,
                                       base_version=ConfigurationVersion.objects.get(version=version),
                                       justification=justification.strip(), proposed_by=actor.name)
        data = {"proposal_id": str(proposal.proposal_id), "parameter": parameter, "current_value": current,
                "proposed_value": value, "companion_changes": companion_changes,
                "justification": proposal.justification, "proposed_by": actor.name, "base_version": version}
        data["content_hash"] = proposal_content_hash(data)
        # Who proposed, for four eyes (by user id: a rename changes nothing); not covered by
        # the content hash, which stays what it was for proposals made before it existed.
        data["proposed_by_identity"] = actor.identity
        proposal.workflow = workflow_services.start_workflow(
            "calibration", actor=actor, data=data, comment=proposal.justification, request_id=request_id)
        proposal.save()
        emit(Event.CALIBRATION_PROPOSED, actor=actor.name, subject=str(proposal.proposal_id), request_id=request_id,
             data={"parameter": parameter, "from": current, "to": value, "companions": companion_changes})
    return proposal


def get_proposal(proposal_id) -> CalibrationProposal:
    try:
        return CalibrationProposal.objects.select_related("workflow", "base_version", "applied_version").get(
            proposal_id=proposal_id)
    except (CalibrationProposal.DoesNotExist, ValueError, ValidationError):
        raise CalibrationError(f"No calibration proposal {proposal_id}", workflow_services.WorkflowError.NOT_FOUND) \
            from None


def _stale_value(proposal: CalibrationProposal, config: AegisConfig) -> tuple[str, float] | None:
    """(parameter, active value) for the first parameter that changed since the proposal
    was made, else None."""
    for name, value in proposal.values_when_proposed.items():
        if getattr(config, name) != value:
            return name, getattr(config, name)
    return None


def _mark_stale_locked(workflow, changed: tuple[str, float], request_id: str) -> None:
    name, active_value = changed
    workflow_services.fire_locked(workflow, "mark_stale", actor=Actor.system("aegis-calibration"),
                                  comment=f"{name} is now {active_value:g} in the active configuration",
                                  params={"active_value": active_value}, request_id=request_id, now=timezone.now())
    emit(Event.CALIBRATION_STALE, actor="aegis-calibration", subject=str(workflow.workflow_id), request_id=request_id,
         data={"parameter": name, "active_value": active_value})


def _step(proposal_id, event: str, *, actor: Actor, comment: str, request_id: str) -> CalibrationProposal:
    """Approve, reject or withdraw: lock, refuse if stale (recording it), fire."""
    proposal = get_proposal(proposal_id)
    stale_message = None
    with transaction.atomic():
        workflow = workflow_services.lock_workflow(proposal.workflow.workflow_id)
        version, config = active_config()
        changed = _stale_value(proposal, config)
        if changed is not None and workflow.current_state in OPEN_STATES:
            _mark_stale_locked(workflow, changed, request_id)
            stale_message = (f"STALE: {changed[0]} changed to {changed[1]:g} (v{version}) after this "
                             f"proposal was made; propose again from the new value")
        elif workflow.current_state == "stale":
            raise CalibrationError(f"STALE: {proposal.parameter} changed after this proposal was made; propose again "
                                   f"from the new value", workflow_services.WorkflowError.CONFLICT)
        else:
            try:
                workflow_services.fire_locked(workflow, event, actor=actor, comment=comment, params={},
                                              request_id=request_id, now=timezone.now(), trusted=False)
            except workflow_services.WorkflowError as exc:
                raise _from_workflow_error(exc) from None
            emit(STEP_EVENTS[event], actor=actor.name, subject=str(proposal.proposal_id), request_id=request_id,
                 data={"parameter": proposal.parameter, "comment": comment})
    if stale_message:
        raise CalibrationError(stale_message, workflow_services.WorkflowError.CONFLICT)
    return get_proposal(proposal_id)


def approve(proposal_id, *, actor: Actor, comment: str, request_id: str = "") -> CalibrationProposal:
    return _step(proposal_id, "approve", actor=actor, comment=comment, request_id=request_id)


def reject(proposal_id, *, actor: Actor, comment: str, request_id: str = "") -> CalibrationProposal:
    return _step(proposal_id, "reject", actor=actor, comment=comment, request_id=request_id)


def withdraw(proposal_id, *, actor: Actor, comment: str, request_id: str = "") -> CalibrationProposal:
    """The proposer takes an open proposal back (a risk lead rejects; the proposer withdraws)."""
    return _step(proposal_id, "withdraw", actor=actor, comment=comment, request_id=request_id)


def apply(proposal_id, *, actor: Actor, request_id: str = "") -> ConfigurationVersion:
    """Create exactly one new configuration version from an APPROVED proposal."""
    proposal = get_proposal(proposal_id)
    stale_message = None
    with transaction.atomic():
        # Applies queue on one row that never changes (version 1), taken before any workflow
        # lock, so two applies can neither create the same version nor deadlock.
        ConfigurationVersion.objects.select_for_update().order_by("version").values_list("pk", flat=True).first()
        workflow = workflow_services.lock_workflow(proposal.workflow.workflow_id)
        if workflow.current_state == "stale":
            raise CalibrationError(f"STALE: {proposal.parameter} changed after this proposal was made; it cannot be "
                                   f"applied", workflow_services.WorkflowError.CONFLICT)
        if workflow.current_state != "approved":
            raise CalibrationError(f"Apply needs an APPROVED proposal; this one is {workflow.current_state.upper()}",
                                   workflow_services.WorkflowError.CONFLICT)
        forget_newest()  # judged as stored now, under the lock
        rejected = configuration_status().first_rejected
        if rejected is not None:
            raise CalibrationError(f"Cannot apply on top of a rejected configuration version ({rejected}); see "
                                   f"docs/operations.md#alert-configuration-rejected",
                                   workflow_services.WorkflowError.CONFLICT)
        latest = ConfigurationVersion.objects.order_by("-version").first()
        config = config_of(latest.version, latest.content_hash)
        changed = _stale_value(proposal, config)
        if changed is not None:
            _mark_stale_locked(workflow, changed, request_id)
            stale_message = (f"STALE: {changed[0]} changed to {changed[1]:g} (v{latest.version}) after this "
                             f"proposal was made; it cannot be applied")
        else:
            try:
                _, _, resulting = validate_change(proposal.parameter, proposal.proposed_value, base=config,
                                                  companions=_companion_values(proposal))
            except CalibrationError as exc:
                raise CalibrationError(f"Cannot apply to v{latest.version}: {exc.message}",
                                       workflow_services.WorkflowError.CONFLICT) from None
            parameters = resulting.to_dict()
            created = ConfigurationVersion.objects.create(
                version=latest.version + 1, parameters=parameters, content_hash=content_hash(parameters),
                source=ConfigurationVersion.Source.CALIBRATION, source_ref=str(proposal.proposal_id),
                author=actor.name, parent=latest)
            ledger.record_configuration_version(created)
            try:
                workflow_services.fire_locked(workflow, "apply", actor=actor, comment="",
                                              params={"applied_version": created.version}, request_id=request_id,
                                              now=timezone.now())
            except workflow_services.WorkflowError as exc:
                raise _from_workflow_error(exc) from None
            CalibrationProposal.objects.filter(pk=proposal.pk).update(applied_version=created)
            emit(Event.CALIBRATION_APPLIED, actor=actor.name, subject=str(proposal.proposal_id), request_id=request_id,
                 data={"parameter": proposal.parameter, "version": created.version})
            _stale_siblings(proposal, created, request_id)
    if stale_message:
        raise CalibrationError(stale_message, workflow_services.WorkflowError.CONFLICT)
    return created


def _companion_values(proposal: CalibrationProposal) -> dict[str, float]:
    return {name: change["to"] for name, change in proposal.companion_changes.items()}


def _stale_siblings(applied: CalibrationProposal, version: ConfigurationVersion, request_id: str) -> None:
    """Open proposals made against values this one changed are stale now."""
    config = config_of(version.version, version.content_hash)
    siblings = (CalibrationProposal.objects.filter(workflow__current_state__in=OPEN_STATES)
                .exclude(pk=applied.pk).select_related("workflow"))
    for sibling in siblings:
        changed = _stale_value(sibling, config)
        if changed is None:
            continue
        workflow = workflow_services.lock_workflow(sibling.workflow.workflow_id)
        if workflow.current_state in OPEN_STATES:
            _mark_stale_locked(workflow, changed, request_id)


# --- impact preview -----------------------------------------------------------------------

@dataclass(frozen=True)
class DriftReportChange:
    """A stored drift report whose status the proposed thresholds would change."""

    customer_id: str
    tenant: str
    day: Any
    kl_divergence: float
    before: str
    after: str

    @property
    def url(self) -> str:
        """The tenant's drift page, where the report is."""
        return reverse("drift:tenant", args=[self.customer_id])

    def as_dict(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "customer_id": self.customer_id, "day": self.day.isoformat(),
                "kl_divergence": round(self.kl_divergence, 4), "from": self.before, "to": self.after,
                "url": self.url}


@dataclass(frozen=True)
class ImpactPreview:
    parameter: str
    current_value: float
    proposed_value: float
    window_days: int
    decisions: int
    changed: int
    changes: dict[str, int]  # "proceed → halt": count
    examples: dict[str, list[str]]  # "proceed → halt": decision ids
    seconds: float
    drift_reports: int  # stored reports of the window, re-judged on their KL
    drift_changes: dict[str, int]  # "warning → normal": count
    drift_examples: list[DriftReportChange]  # newest first, at most PREVIEW_DRIFT_REPORTS

    @property
    def rows(self) -> list[tuple[str, int, list[str]]]:
        """(change, count, example decision ids), largest first."""
        return [(change, count, self.examples.get(change, [])) for change, count in self.changes.items()]

    @property
    def drift_changed(self) -> int:
        return sum(self.drift_changes.values())

    @property
    def total_changed(self) -> int:
        return self.changed + self.drift_changed

    def as_dict(self) -> dict[str, Any]:
        return {"parameter": self.parameter, "current_value": self.current_value,
                "proposed_value": self.proposed_value, "window_days": self.window_days,
                "decisions": self.decisions, "changed": self.changed, "changes": self.changes,
                "examples": self.examples, "total_changed": self.total_changed,
                "drift_reports": {"reports": self.drift_reports, "changed": self.drift_changed,
                                  "changes": self.drift_changes,
                                  "listed": [row.as_dict() for row in self.drift_examples]},
                "seconds": round(self.seconds, 3)}


def drift_report_changes(config: AegisConfig, proposed: AegisConfig, since) -> tuple[int, Counter, list]:
    """(reports of the window since `since`, change counts, changed reports newest first):
    every stored drift report re-judged on its KL under the active and the proposed
    thresholds, by the engine's own rule, in one query."""
    rows = (DriftReport.objects.filter(day__gte=since.date()).order_by("-day", "customer__name")
            .values_list("customer__customer_id", "customer__name", "day", "kl_divergence"))
    counts: Counter[str] = Counter()
    changed: list[DriftReportChange] = []
    total = 0
    for customer_id, name, day, kl in rows:
        total += 1
        before = classify(kl, config.tau_warning, config.tau_critical)
        after = classify(kl, proposed.tau_warning, proposed.tau_critical)
        if before != after:
            counts[f"{before} → {after}"] += 1
            if len(changed) < PREVIEW_DRIFT_REPORTS:
                changed.append(DriftReportChange(customer_id, name, day, kl, before, after))
    return total, counts, changed


def window_start(window_days: int, now=None):
    """Where the replay window of the last `window_days` begins."""
    return (now or timezone.now()) - timedelta(days=window_days)


def load_replay_window(window_days: int, *, now=None) -> tuple[np.ndarray, bytes]:
    """(decision primary keys ascending, concatenated replay vectors) of the non-shadow
    decisions of the last `window_days`: closed days from their pre-packed rows, the rest
    live (governance.replay_packs)."""
    return load_replay_rows(window_start(window_days, now))


def preview_change(parameter: Any, new_value: Any, *, now=None, companions: dict[str, Any] | None = None) -> ImpactPreview:
    """Re-decide the last kl_window_days of decisions under the active config and under
    the proposed one (batch engine), re-judge the window's stored drift reports on their
    KL under both thresholds, and count the statuses that would change."""
    started = timezone.now()
    version, config = active_config()
    parameter, value, proposed_config = validate_change(parameter, new_value, base=config, companions=companions)
    ids, packed = load_replay_window(config.kl_window_days, now=now)
    changes: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    if len(ids):
        before_columns, _ = unpack_replay(packed, config)
        after_columns, _ = unpack_replay(packed, proposed_config)
        before = evaluate_batch(before_columns, config).status
        after = evaluate_batch(after_columns, proposed_config).status
        moved = np.flatnonzero(before != after)
        pairs = before[moved].astype(np.int16) * len(STATUSES) + after[moved]
        for code, count in zip(*np.unique(pairs, return_counts=True)):
            label = f"{STATUSES[code // len(STATUSES)]} → {STATUSES[code % len(STATUSES)]}"
            changes[label] = int(count)
            sample = ids[moved[pairs == code][:PREVIEW_EXAMPLES]]
            examples[label] = [str(d) for d in Decision.objects.filter(id__in=sample.tolist())
                               .values_list("decision_id", flat=True)]
    drift_reports, drift_changes, drift_examples = drift_report_changes(
        config, proposed_config, window_start(config.kl_window_days, now))
    seconds = (timezone.now() - started).total_seconds()
    return ImpactPreview(parameter, getattr(config, parameter), value, config.kl_window_days, int(len(ids)),
                         sum(changes.values()), dict(sorted(changes.items(), key=lambda kv: -kv[1])),
                         examples, seconds, drift_reports, dict(sorted(drift_changes.items(), key=lambda kv: -kv[1])),
                         drift_examples)


def preview(proposal_id, *, now=None) -> ImpactPreview:
    proposal = get_proposal(proposal_id)
    return preview_change(proposal.parameter, proposal.proposed_value, now=now,
                          companions=_companion_values(proposal))


def can_approve(actor: Actor) -> bool:
    return Role.RISK_LEAD in actor.roles


def is_proposer(proposal: CalibrationProposal, actor: Actor) -> bool:
    """Whether `actor` proposed `proposal`: by identity (user id), as four eyes decides."""
    data = proposal.workflow.state_data
    return is_recorded_person(actor, data.get("proposed_by_identity"), data.get("proposed_by", proposal.proposed_by))


# --- drift history (for the review page's chart) ------------------------------------------

DRIFT_KL_INDEX = REPLAY_FIELDS.index("drift_kl")


def drift_history(days: int = 90, *, now=None) -> list[tuple[Any, float, str]]:
    """(day, highest KL that day, status under the active taus), oldest first: from the
    daily drift reports of all tenants, or, before any report exists, from the decisions
    whose drift was computed."""
    _, config = active_config()
    since = (now or timezone.now()) - timedelta(days=days)
    daily: dict[Any, float] = {}
    reports = DriftReport.objects.filter(day__gte=since.date()).values_list("day", "kl_divergence")
    for day, kl in reports:
        daily[day] = max(kl, daily.get(day, 0.0))
    rows = (Decision.objects.filter(created_at__gte=since).exclude(drift_status="")
            .values_list("created_at", "replay_vector"))
    for created_at, blob in ([] if daily else rows.iterator(chunk_size=20000)):
        kl = float(np.frombuffer(bytes(blob), dtype="<f8")[DRIFT_KL_INDEX])
        if math.isfinite(kl):
            day = created_at.date()
            daily[day] = max(kl, daily.get(day, 0.0))

    return [(day, kl, classify(kl, config.tau_warning, config.tau_critical)) for day, kl in sorted(daily.items())]
