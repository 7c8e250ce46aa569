"""ProposalWorkflow, ConsensusWorkflow, OverrideWorkflow: plain objects that serialise a
stored workflow — its state and its whole transition history — with `to_dict()` and come
back with `from_dict()` (the seed's export/restore procedure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from .machines import MACHINES
from .serialization import ensure_utc, utc_iso

TRANSITION_KEYS = ("seq", "from_state", "to_state", "triggered_by", "reason", "payload", "created_at",
                   "prev_hash", "hash")


@dataclass
class Workflow:
    workflow_type: ClassVar[str] = ""

    workflow_id: str
    current_state: str
    status: str
    state_data: dict[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime
    transitions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def machine(self):
        return MACHINES[self.workflow_type]

    def to_dict(self) -> dict[str, Any]:
        return {
            "workflow_id": self.workflow_id,
            "workflow_type": self.workflow_type,
            "current_state": self.current_state,
            "status": self.status,
            "state_data": self.state_data,
            "version": self.version,
            "created_at": utc_iso(self.created_at),
            "updated_at": utc_iso(self.updated_at),
            "transitions": [{**t, "created_at": utc_iso(t["created_at"])} for t in self.transitions],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Workflow":
        """Rebuild from `to_dict()` output (timestamps in any offset are normalised to UTC)."""
        kind = data.get("workflow_type", cls.workflow_type)
        target = WORKFLOW_CLASSES.get(kind)
        if target is None:
            raise ValueError(f"workflow_type: unknown type {kind!r}")
        if cls is not Workflow and target is not cls:
            raise ValueError(f"workflow_type: {cls.__name__} cannot load a {kind!r} workflow")
        missing = [k for k in ("workflow_id", "current_state", "status", "version") if k not in data]
        if missing:
            raise ValueError(f"missing field(s): {', '.join(missing)}")
        transitions = []
        for position, item in enumerate(data.get("transitions", []), start=1):
            absent = [k for k in TRANSITION_KEYS if k not in item]
            if absent:
                raise ValueError(f"transitions[{position}]: missing {', '.join(absent)}")
            transitions.append({**{k: item[k] for k in TRANSITION_KEYS}, "created_at": ensure_utc(item["created_at"])})
        return target(workflow_id=str(data["workflow_id"]), current_state=data["current_state"],
                      status=data["status"], state_data=dict(data.get("state_data") or {}),
                      version=int(data["version"]), created_at=ensure_utc(data["created_at"]),
                      updated_at=ensure_utc(data["updated_at"]), transitions=transitions)


class ProposalWorkflow(Workflow):
    workflow_type = "proposal"


class ConsensusWorkflow(Workflow):
    workflow_type = "consensus"


class OverrideWorkflow(Workflow):
    workflow_type = "override"


class CalibrationWorkflow(Workflow):
    workflow_type = "calibration"


WORKFLOW_CLASSES: dict[str, type[Workflow]] = {
    cls.workflow_type: cls for cls in (ProposalWorkflow, ConsensusWorkflow, OverrideWorkflow, CalibrationWorkflow)}
assert set(WORKFLOW_CLASSES) == set(MACHINES), "every machine needs its Workflow class"
