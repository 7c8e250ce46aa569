"""REST API for workflows under /api/workflows (session or API-key auth).

A signed-in person acts with the roles of their groups and sees every workflow; an API
key acts for its tenant, sees only that tenant's workflows and holds no reviewer role.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from governance import services as governance_services
from governance.api.auth import ApiPrincipal, acting_as
from governance.api.errors import ApiError
from governance.api.middleware import request_id_of
from governance.api.views import input_error, json_object
from governance.engine.inputs import InputError, parse_proposal

from . import services
from .machines import MACHINES, Actor
from .persistence.durable import DurableWorkflowEngine
from .persistence.models import WorkflowInstance, WorkflowStatus
from .serialization import TimestampError, ensure_utc, utc_iso

ERROR_STATUS = {services.WorkflowError.NOT_FOUND: 404, services.WorkflowError.FORBIDDEN: 403,
                services.WorkflowError.CONFLICT: 409, services.WorkflowError.INVALID: 400}
LIST_MAX = 500


def api_error(exc: services.WorkflowError) -> ApiError:
    return ApiError(ERROR_STATUS[exc.code], exc.code, exc.message)


def visible(request):
    _, customer = acting_as(request)
    rows = WorkflowInstance.objects.all()
    return rows.filter(customer=customer) if customer is not None else rows


def workflow_summary(workflow: WorkflowInstance) -> dict[str, Any]:
    return {"workflow_id": str(workflow.workflow_id), "workflow_type": workflow.workflow_type,
            "current_state": workflow.current_state, "status": workflow.status, "version": workflow.version,
            "created_at": utc_iso(workflow.created_at), "updated_at": utc_iso(workflow.updated_at)}


def workflow_detail(workflow: WorkflowInstance, actor: Actor) -> dict[str, Any]:
    transitions = [{"seq": t.seq, "from_state": t.from_state, "to_state": t.to_state,
                    "triggered_by": t.triggered_by, "reason": t.reason, "payload": t.payload,
                    "created_at": utc_iso(t.created_at), "prev_hash": t.prev_hash, "hash": t.hash}
                   for t in workflow.transitions.order_by("seq")]
    events = [{"event": e.name, "label": e.label, "requires_comment": e.requires_comment,
               "params": [{"name": p.name, "choices": list(p.choices), "required": p.required}
                          for p in e.params if not p.internal]}
              for e in services.allowed_events(workflow, actor)]
    return {**workflow_summary(workflow), "state_data": workflow.state_data, "transitions": transitions,
            "allowed_events": events}


class WorkflowListView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(parameters=[OpenApiParameter("status", str, enum=WorkflowStatus.values),
                               OpenApiParameter("type", str, enum=list(MACHINES)),
                               OpenApiParameter("limit", int)],
                   responses=OpenApiTypes.OBJECT, summary="List workflows", operation_id="list_workflows")
    def get(self, request):
        rows = visible(request)
        status, kind = request.query_params.get("status"), request.query_params.get("type")
        if status:
            if status not in WorkflowStatus.values:
                raise ApiError(400, "invalid_request", f"status must be one of {', '.join(WorkflowStatus.values)}")
            rows = rows.filter(status=status)
        if kind:
            if kind not in MACHINES:
                raise ApiError(400, "invalid_request", f"type must be one of {', '.join(MACHINES)}")
            rows = rows.filter(workflow_type=kind)
        limit = request.query_params.get("limit", "100")
        if not (limit.isascii() and limit.isdigit()) or not 1 <= int(limit) <= LIST_MAX:
            raise ApiError(400, "invalid_request", f"limit must be an integer from 1 to {LIST_MAX}")
        items = [workflow_summary(w) for w in rows[: int(limit)]]
        return Response({"count": len(items), "workflows": items})


class ProposalWorkflowCreateView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT,
                   summary="Submit a proposal workflow (evaluated at once)", operation_id="submit_proposal_workflow")
    def post(self, request):
        try:
            proposal = parse_proposal(json_object(request))
        except InputError as exc:
            raise input_error(exc) from None
        actor, customer = acting_as(request)
        api_key = request.user.api_key if isinstance(request.user, ApiPrincipal) else None
        try:
            workflow = governance_services.submit_proposal(proposal, actor=actor, customer=customer, api_key=api_key,
                                                           request_id=request_id_of(request))
        except services.WorkflowError as exc:
            raise api_error(exc) from None
        return Response(workflow_detail(workflow, actor), status=201)


CONSENSUS_FIELDS = {"subject", "reviewers", "quorum", "approval_threshold", "deadline"}


class ConsensusWorkflowCreateView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT,
                   summary="Start a consensus vote", operation_id="start_consensus_workflow")
    def post(self, request):
        data = json_object(request)
        unknown = sorted(set(data) - CONSENSUS_FIELDS)
        if unknown:
            raise ApiError(422, "unknown_field", "Unknown field(s): " + ", ".join(unknown))
        missing = sorted(CONSENSUS_FIELDS - set(data))
        if missing:
            raise ApiError(400, "invalid_request", "missing field(s): " + ", ".join(missing))
        if not isinstance(data["reviewers"], list) or not all(isinstance(r, str) for r in data["reviewers"]):
            raise ApiError(400, "invalid_request", "reviewers must be a list of usernames")
        if isinstance(data["quorum"], bool) or not isinstance(data["quorum"], int):
            raise ApiError(400, "invalid_request", "quorum must be an integer")
        threshold = data["approval_threshold"]
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise ApiError(400, "invalid_request", "approval_threshold must be a number in (0, 1]")
        if not isinstance(data["subject"], str):
            raise ApiError(400, "invalid_request", "subject must be a string")
        try:
            deadline: datetime = ensure_utc(data["deadline"])
        except TimestampError as exc:
            raise ApiError(400, "invalid_request", f"deadline: {exc}") from None
        actor, customer = acting_as(request)
        spec = services.ConsensusSpec(subject=data["subject"], reviewers=data["reviewers"], quorum=data["quorum"],
                                      approval_threshold=float(threshold), deadline=deadline)
        try:
            workflow = services.start_consensus(spec, actor=actor, customer=customer,
                                                request_id=request_id_of(request))
        except services.WorkflowError as exc:
            raise api_error(exc) from None
        return Response(workflow_detail(workflow, actor), status=201)


class WorkflowDetailView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=OpenApiTypes.OBJECT, summary="A workflow with its transitions",
                   operation_id="get_workflow")
    def get(self, request, workflow_id):
        actor, _ = acting_as(request)
        return Response(workflow_detail(load_visible(request, workflow_id), actor))


def load_visible(request, workflow_id) -> WorkflowInstance:
    if not visible(request).filter(workflow_id=_uuid_or_none(workflow_id)).exists():
        raise ApiError(404, "not_found", f"No workflow {workflow_id}")
    try:
        return services.get_workflow(workflow_id)
    except services.WorkflowError as exc:
        raise api_error(exc) from None


def _uuid_or_none(value):
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


class WorkflowEventView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT,
                   summary="Fire an event (body: comment and the event's params)", operation_id="fire_workflow_event")
    def post(self, request, workflow_id, event):
        data = json_object(request)
        load_visible(request, workflow_id)
        comment = data.get("comment", "")
        params = data.get("params", {})
        if not isinstance(comment, str) or not isinstance(params, dict):
            raise ApiError(400, "invalid_request", "comment must be a string and params an object")
        unknown = sorted(set(data) - {"comment", "params"})
        if unknown:
            raise ApiError(422, "unknown_field", "Unknown field(s): " + ", ".join(unknown))
        actor, _ = acting_as(request)
        try:
            workflow = services.perform(workflow_id, event, actor=actor, comment=comment, params=params,
                                        request_id=request_id_of(request))
        except services.WorkflowError as exc:
            raise api_error(exc) from None
        return Response(workflow_detail(workflow, actor))


class WorkflowVerifyView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT, summary="Verify the workflow's audit chain",
                   operation_id="verify_workflow")
    def post(self, request, workflow_id):
        load_visible(request, workflow_id)
        report = DurableWorkflowEngine().report(workflow_id)
        return Response({"workflow_id": report.workflow_id, "is_valid": report.is_valid, "message": report.message,
                         "transitions": report.transitions, "checkpoints": report.checkpoints,
                         "broken_seq": report.broken_seq})
