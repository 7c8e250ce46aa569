"""Whether a stored configuration version may be served.

A version verifies when its content hash is its parameters' hash, its chain hash links it to
the version stored before it, and it has a provenance: version 1 from the interface contract
(source schema_default, the contract defaults), or the result of an applied calibration
proposal whose hash-chained workflow verifies and was approved by someone other than its
proposer, its parameters being its predecessor's with the proposal's changes. Versions are
judged in order; the first one that does not verify rejects every later one too (each is
built on top of it), so the served version is the newest before the first rejected one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from django.core.exceptions import ValidationError

from governance.engine import AegisConfig, ConfigError
from workflows.machines import Actor, is_recorded_person
from workflows.persistence.durable import DurableWorkflowEngine
from workflows.persistence.models import WorkflowTransition

from .chain import GENESIS_CHAIN_HASH, content_hash
from .models import CalibrationProposal, ConfigurationVersion

# (version, content hash, chain hash, predecessor's chain hash): what a verdict depends on
# besides the row's other columns, which those hashes cover.
VerdictKey = tuple[int, str, str, str]


@dataclass(frozen=True)
class Rejection:
    version: int
    reason: str

    def __str__(self) -> str:
        return f"v{self.version}: {self.reason}"


@dataclass(frozen=True)
class ConfigurationStatus:
    """The served version (None: not one verifies) and the stored versions rejected."""

    served: int | None
    served_content_hash: str
    rejected: tuple[Rejection, ...]
    checked: int

    @property
    def newest_rejected(self) -> Rejection | None:
        return self.rejected[-1] if self.rejected else None

    @property
    def first_rejected(self) -> Rejection | None:
        return self.rejected[0] if self.rejected else None


def _calibration_problem(version: ConfigurationVersion, predecessor: ConfigurationVersion) -> str | None:
    try:
        proposal = CalibrationProposal.objects.select_related("workflow").get(proposal_id=version.source_ref)
    except (CalibrationProposal.DoesNotExist, ValueError, ValidationError):
        return f"no calibration proposal {version.source_ref!r} (its source_ref) exists"
    if proposal.applied_version_id != version.pk:
        return f"calibration proposal {proposal.proposal_id} did not apply it"
    workflow = proposal.workflow
    report = DurableWorkflowEngine().report(workflow.workflow_id)
    if not report.is_valid:
        return f"its calibration workflow {workflow.workflow_id} does not verify: {report.message}"
    if workflow.current_state != "applied":
        return f"its calibration workflow {workflow.workflow_id} is {workflow.current_state}, not applied"
    data = workflow.state_data
    transitions = list(WorkflowTransition.objects.filter(workflow=workflow).order_by("seq")
                       .values_list("to_state", "triggered_by", "payload"))
    applied = [i for i, (to_state, _, payload) in enumerate(transitions)
               if to_state == "applied" and payload.get("applied_version") == version.version]
    approvals = [(by, payload) for to_state, by, payload in transitions[:applied[0]] if to_state == "approved"] \
        if applied else []
    if not approvals or data.get("applied_version") != version.version:
        return f"its calibration workflow {workflow.workflow_id} records no approval and apply of v{version.version}"
    approver_name, approval = approvals[-1]
    approver = Actor(name=approver_name, id=approval.get("actor_id"))
    _, proposer_name, proposed = transitions[0]
    if (approver.identity == Actor(name=proposer_name, id=proposed.get("actor_id")).identity
            or is_recorded_person(approver, data.get("proposed_by_identity"), data.get("proposed_by", ""))):
        return f"four eyes: its calibration workflow {workflow.workflow_id} was approved by its proposer"
    if approval.get("content_hash") != data.get("content_hash"):
        return f"the approval in workflow {workflow.workflow_id} covers other content than the proposal"
    changes = {data["parameter"]: data["proposed_value"],
               **{name: change["to"] for name, change in data.get("companion_changes", {}).items()}}
    try:
        expected = AegisConfig.from_dict(predecessor.parameters, base=AegisConfig.default()).replace(**changes)
    except (ConfigError, KeyError, TypeError, ValueError):
        return f"the approved changes do not apply to v{predecessor.version}"
    if expected.to_dict() != version.parameters:
        return f"its parameters are not v{predecessor.version}'s with the approved changes"
    return None


def problem_of(version: ConfigurationVersion, predecessor: ConfigurationVersion | None) -> str | None:
    """Why `version` may not be served (given the version stored before it), or None."""
    if content_hash(version.parameters) != version.content_hash:
        return "content_hash does not match its parameters"
    linked = version.linked_chain_hash(predecessor.chain_hash if predecessor else GENESIS_CHAIN_HASH)
    if version.chain_hash != linked:
        return "chain_hash does not link it to the version before it (inserted, edited or a version deleted)"
    if version.version == 1 or predecessor is None:
        if version.version != 1 or version.source != ConfigurationVersion.Source.SCHEMA_DEFAULT:
            return "the first version must be version 1 from the interface contract"
        if version.parameters != AegisConfig.default().to_dict():
            return "version 1's parameters are not the interface contract's defaults"
        return None
    if version.source != ConfigurationVersion.Source.CALIBRATION:
        return f"source {version.source!r}: only version 1 comes from the contract, later ones from calibration"
    if version.parent_id != predecessor.pk:
        return f"its parent is not v{predecessor.version}, the version stored before it"
    return _calibration_problem(version, predecessor)


def judge(stored: Iterable[tuple[int, str, str]], verdicts: dict[VerdictKey, str | None]) -> ConfigurationStatus:
    """The status of the stored (version, content hash, chain hash) rows, in version order.
    A row whose key is in `verdicts` is not read again; new verdicts are added to it."""
    served, served_digest, rejected = None, "", []
    previous_chain, previous_version = GENESIS_CHAIN_HASH, None
    checked = 0
    for number, digest, chain in stored:
        checked += 1
        if rejected:
            rejected.append(Rejection(number, f"follows rejected v{rejected[0].version}"))
            continue
        key = (number, digest, chain, previous_chain)
        if key not in verdicts:
            unverified = ConfigurationVersion.objects.defer("author")  # PII the verdict does not read
            row = unverified.get(version=number)
            predecessor = unverified.get(version=previous_version) if previous_version else None
            verdicts[key] = problem_of(row, predecessor)
        if verdicts[key] is not None:
            rejected.append(Rejection(number, verdicts[key]))
            continue
        served, served_digest = number, digest
        previous_chain, previous_version = chain, number
    return ConfigurationStatus(served, served_digest, tuple(rejected), checked)


def stored_keys() -> list[tuple[int, str, str]]:
    return list(ConfigurationVersion.objects.order_by("version").values_list("version", "content_hash", "chain_hash"))


def verify_all_versions() -> ConfigurationStatus:
    """Every stored version judged afresh (the verification run: no verdict remembered)."""
    return judge(stored_keys(), {})
