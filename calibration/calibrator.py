"""The seed's Calibrator actor, on the calibration services.

    calibrator = Calibrator(actor_id="calibrator-1", drift_monitor=monitor, bayesian_posterior=posterior)
    proposal = calibrator.propose_calibration(parameter="tau_warning", new_value=0.35,
                                              justification="Sustained drift above current threshold")
    calibrator.approve(proposal.proposal_id, approver_id="risk-lead")
    calibrator.apply_calibration(proposal.proposal_id)

Actor, proposer and approver ids are usernames; the users must exist (system actors such
as `drift-monitor` are users that cannot log in). The same rules hold as everywhere:
only the 16 calibratable parameters, validation against the whole resulting config,
four eyes, approval by a Risk Lead, apply only once APPROVED.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model

from workflows.services import actor_for

from . import services
from .models import ConfigurationVersion

# The whitelist, as the seed names it.
_RECOGNIZED_PARAMETERS = services.CALIBRATABLE_PARAMETERS


@dataclass(frozen=True)
class CalibrationProposalView:
    """What the Calibrator hands back: the proposal as it stands."""

    proposal_id: str
    parameter: str
    current_value: float
    proposed_value: float
    justification: str
    proposed_by: str
    status: str  # PROPOSED, APPROVED, APPLIED, REJECTED, WITHDRAWN, STALE

    @classmethod
    def of(cls, proposal) -> "CalibrationProposalView":
        return cls(str(proposal.proposal_id), proposal.parameter, proposal.current_value, proposal.proposed_value,
                   proposal.justification, proposal.proposed_by, proposal.workflow.current_state.upper())


class Calibrator:
    """Proposes, approves, rejects, withdraws and applies calibrations as `actor_id`."""

    def __init__(self, actor_id: str, drift_monitor: Any = None, bayesian_posterior: Any = None):
        self.actor_id = actor_id
        self.drift_monitor = drift_monitor
        self.bayesian_posterior = bayesian_posterior
        self._lock = threading.Lock()  # one step at a time per Calibrator (the seed's guarantee)

    @staticmethod
    def _actor(username: str):
        try:
            return actor_for(get_user_model().objects.get(username=username))
        except get_user_model().DoesNotExist:
            raise services.CalibrationError(f"no user {username!r}: actor, proposer and approver ids are "
                                            "usernames of existing users") from None

    def propose_calibration(self, parameter: str, new_value: float, justification: str) -> CalibrationProposalView:
        with self._lock:
            proposal = services.propose(parameter, new_value, justification, actor=self._actor(self.actor_id))
        return CalibrationProposalView.of(proposal)

    def approve(self, proposal_id, approver_id: str, comment: str = "Approved") -> CalibrationProposalView:
        with self._lock:
            proposal = services.approve(proposal_id, actor=self._actor(approver_id), comment=comment)
        return CalibrationProposalView.of(proposal)

    def reject(self, proposal_id, approver_id: str, reason: str) -> CalibrationProposalView:
        with self._lock:
            proposal = services.reject(proposal_id, actor=self._actor(approver_id), comment=reason)
        return CalibrationProposalView.of(proposal)

    def withdraw(self, proposal_id, reason: str) -> CalibrationProposalView:
        """The proposer (this Calibrator's actor) takes the proposal back."""
        with self._lock:
            proposal = services.withdraw(proposal_id, actor=self._actor(self.actor_id), comment=reason)
        return CalibrationProposalView.of(proposal)

    def apply_calibration(self, proposal_id) -> ConfigurationVersion:
        with self._lock:
            return services.apply(proposal_id, actor=self._actor(self.actor_id))

    def get(self, proposal_id) -> CalibrationProposalView:
        return CalibrationProposalView.of(services.get_proposal(proposal_id))
