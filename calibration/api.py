"""REST API for calibration and configuration versions (same rules and messages as the pages).

The configuration is global, so these endpoints act for signed-in people (session or
HTTP Basic), never for a tenant's API key.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.api.auth import ApiPrincipal
from governance.api.errors import ApiError
from governance.api.middleware import request_id_of
from governance.api.views import json_object
from workflows.api import ERROR_STATUS
from workflows.services import actor_for
from workflows.serialization import utc_iso

from . import services
from .models import CalibrationProposal, ConfigurationVersion
from .versions import active_version

LIST_MAX = 500


class IsPerson(BasePermission):
    message = "Calibration needs a signed-in user; API keys act for a tenant and cannot change the configuration"

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated and not isinstance(request.user, ApiPrincipal))


def api_error(exc: services.CalibrationError) -> ApiError:
    return ApiError(ERROR_STATUS[exc.code], exc.code, exc.message)


def proposal_dict(proposal: CalibrationProposal) -> dict[str, Any]:
    data = proposal.workflow.state_data
    return {
        "proposal_id": str(proposal.proposal_id), "parameter": proposal.parameter,
        "current_value": proposal.current_value, "proposed_value": proposal.proposed_value,
        "companion_changes": proposal.companion_changes, "status": proposal.workflow.current_state.upper(), "justification": proposal.justification,
        "proposed_by": proposal.proposed_by, "approver_id": data.get("approver_id"),
        "base_version": proposal.base_version.version,
        "applied_version": proposal.applied_version.version if proposal.applied_version else None,
        "content_hash": data.get("content_hash"), "workflow_id": str(proposal.workflow.workflow_id),
        "created_at": utc_iso(proposal.created_at),
    }


def version_dict(version: ConfigurationVersion, *, parameters: bool = True) -> dict[str, Any]:
    body = {"version": version.version, "content_hash": version.content_hash, "source": version.source,
            "source_ref": version.source_ref, "author": version.author,
            "parent": version.parent.version if version.parent_id else None, "created_at": utc_iso(version.created_at)}
    if parameters:
        body["parameters"] = version.parameters
    return body


def version_diff(a: ConfigurationVersion, b: ConfigurationVersion) -> list[dict[str, Any]]:
    names = sorted(set(a.parameters) | set(b.parameters))
    return [{"parameter": n, "from": a.parameters.get(n), "to": b.parameters.get(n)}
            for n in names if a.parameters.get(n) != b.parameters.get(n)]


class CalibrationView(APIView):
    permission_classes = [IsAuthenticated, IsPerson]

    def actor(self, request):
        return actor_for(request.user)


class ProposalListView(CalibrationView):
    @extend_schema(parameters=[OpenApiParameter("status", str), OpenApiParameter("parameter", str),
                               OpenApiParameter("proposer", str), OpenApiParameter("limit", int)],
                   responses=OpenApiTypes.OBJECT, summary="List calibration proposals",
                   operation_id="list_calibration_proposals")
    def get(self, request):
        rows = filtered_proposals(request.query_params)
        limit = request.query_params.get("limit", "100")
        if not (limit.isascii() and limit.isdigit()) or not 1 <= int(limit) <= LIST_MAX:
            raise ApiError(400, "invalid_request", f"limit must be an integer from 1 to {LIST_MAX}")
        items = [proposal_dict(p) for p in rows[: int(limit)]]
        return Response({"count": len(items), "proposals": items})

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT,
                   summary="Propose a calibration {parameter, new_value, justification}",
                   operation_id="create_calibration_proposal")
    def post(self, request):
        data = json_object(request)
        unknown = sorted(set(data) - {"parameter", "new_value", "justification"})
        if unknown:
            raise ApiError(422, "unknown_field", "Unknown field(s): " + ", ".join(unknown))
        try:
            proposal = services.propose(data.get("parameter"), data.get("new_value"), data.get("justification", ""),
                                        actor=self.actor(request), request_id=request_id_of(request))
        except services.CalibrationError as exc:
            raise api_error(exc) from None
        return Response(proposal_dict(proposal), status=201)


PROPOSAL_STATUSES = ("PROPOSED", "APPROVED", "APPLIED", "REJECTED", "WITHDRAWN", "STALE")


def filtered_proposals(params, *, open_only: bool = False):
    """Proposals matching the status, parameter and proposer filters, newest first. The
    proposer column is encrypted (a different ciphertext on every write), so that filter
    runs in Python over the rows the other filters leave, and the result is then a list."""
    rows = CalibrationProposal.objects.select_related("workflow", "base_version", "applied_version")
    status = params.get("status")
    if status:
        if status.upper() not in PROPOSAL_STATUSES:
            raise ApiError(400, "invalid_request", f"status must be one of {', '.join(PROPOSAL_STATUSES)}")
        rows = rows.filter(workflow__current_state=status.lower())
    if open_only:
        rows = rows.filter(workflow__current_state__in=services.OPEN_STATES)
    if params.get("parameter"):
        rows = rows.filter(parameter=params["parameter"])
    if params.get("proposer"):
        return [row for row in rows.iterator(chunk_size=500) if row.proposed_by == params["proposer"]]
    return rows


class ProposalDetailView(CalibrationView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="A calibration proposal",
                   operation_id="get_calibration_proposal")
    def get(self, request, proposal_id):
        try:
            return Response(proposal_dict(services.get_proposal(proposal_id)))
        except services.CalibrationError as exc:
            raise api_error(exc) from None


class ProposalStepView(CalibrationView):
    """approve / reject / withdraw (body: {comment}) and apply (no body)."""

    step: str = ""

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
    def post(self, request, proposal_id):
        data = json_object(request) if request.data else {}
        unknown = sorted(set(data) - {"comment"})
        if unknown:
            raise ApiError(422, "unknown_field", "Unknown field(s): " + ", ".join(unknown))
        comment = data.get("comment", "")
        if not isinstance(comment, str):
            raise ApiError(400, "invalid_request", "comment must be a string")
        actor, request_id = self.actor(request), request_id_of(request)
        try:
            if self.step == "apply":
                services.apply(proposal_id, actor=actor, request_id=request_id)
            else:
                getattr(services, self.step)(proposal_id, actor=actor, comment=comment, request_id=request_id)
            return Response(proposal_dict(services.get_proposal(proposal_id)))
        except services.CalibrationError as exc:
            raise api_error(exc) from None


class ProposalPreviewView(CalibrationView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Impact preview: the last kl_window_days re-decided",
                   operation_id="preview_calibration_proposal")
    def get(self, request, proposal_id):
        try:
            return Response(services.preview(proposal_id).as_dict())
        except services.CalibrationError as exc:
            raise api_error(exc) from None


class ValidateView(CalibrationView):
    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT,
                   summary="Check a proposed value without proposing it (live validation)",
                   operation_id="validate_calibration")
    def post(self, request):
        data = json_object(request)
        try:
            parameter, value, _ = services.validate_change(data.get("parameter"), data.get("new_value"))
        except services.CalibrationError as exc:
            return Response({"valid": False, "message": exc.message})
        current = getattr(services.active_config()[1], parameter)
        return Response({"valid": True, "message": f"{parameter}: {current:g} → {value:g} is valid",
                         "current_value": current})


class ActiveConfigView(CalibrationView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="The active configuration", operation_id="get_config")
    def get(self, request):
        return Response(version_dict(active_version()))


class VersionListView(CalibrationView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Configuration versions, newest first",
                   operation_id="list_config_versions")
    def get(self, request):
        return Response({"versions": [version_dict(v, parameters=False)
                                      for v in ConfigurationVersion.objects.select_related("parent")]})


def version_or_404(number) -> ConfigurationVersion:
    try:
        return ConfigurationVersion.objects.select_related("parent").get(version=int(number))
    except (ConfigurationVersion.DoesNotExist, ValueError, TypeError):
        raise ApiError(404, "not_found", f"No configuration version {number!r}") from None


class VersionDetailView(CalibrationView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="One configuration version", operation_id="get_config_version")
    def get(self, request, version):
        return Response(version_dict(version_or_404(version)))


class VersionDiffView(CalibrationView):
    @extend_schema(parameters=[OpenApiParameter("a", int, required=True), OpenApiParameter("b", int, required=True)],
                   responses=OpenApiTypes.OBJECT, summary="Parameters that differ between two versions",
                   operation_id="diff_config_versions")
    def get(self, request):
        a, b = version_or_404(request.query_params.get("a")), version_or_404(request.query_params.get("b"))
        return Response({"a": a.version, "b": b.version, "changes": version_diff(a, b)})
