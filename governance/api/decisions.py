"""/api/decisions/…: what a tenant's integration and a signed-in reviewer do with a stored
decision. A tenant's API key sees only that tenant's decisions (another tenant's id answers
404 like a missing one); a signed-in person sees every decision and acts with the roles
of their groups. The rules themselves live in `governance.decisions`."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from governance import decisions
from workflows.api import api_error
from workflows.services import WorkflowError

from .auth import acting_as
from .errors import ApiError
from .middleware import request_id_of
from .views import json_object


def _only_fields(data: dict, allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ApiError(422, "unknown_field", "Unknown field(s): " + ", ".join(unknown))


class DecisionView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=OpenApiTypes.OBJECT, summary="A stored decision with its review and override",
                   operation_id="get_stored_decision")
    def get(self, request, decision_id):
        _, customer = acting_as(request)
        try:
            decision = decisions.find(decision_id, customer=customer)
        except WorkflowError as exc:
            raise api_error(exc) from None
        return Response({"decision": decisions.as_json([decision])[0]})


class DecisionOverrideView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(request=OpenApiTypes.OBJECT, responses={201: OpenApiTypes.OBJECT},
                   summary="Request the two-key override a decision offers (body: justification)",
                   operation_id="request_decision_override")
    def post(self, request, decision_id):
        data = json_object(request)
        _only_fields(data, {"justification"})
        actor, customer = acting_as(request)
        try:
            body = decisions.request_override(decision_id, actor=actor, customer=customer,
                                              justification=data.get("justification"),
                                              request_id=request_id_of(request))
        except WorkflowError as exc:
            raise api_error(exc) from None
        return Response(body, status=201)


class DecisionReviewView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT,
                   summary="Approve, reject or withdraw a decision's review (body: comment)",
                   operation_id="act_on_decision_review")
    def post(self, request, decision_id, event):
        data = json_object(request)
        _only_fields(data, {"comment"})
        comment = data.get("comment", "")
        if not isinstance(comment, str):
            raise ApiError(400, "invalid_request", "comment must be a string")
        actor, customer = acting_as(request)
        try:
            decision = decisions.act(decision_id, event, actor=actor, comment=comment, customer=customer,
                                     request_id=request_id_of(request))
        except WorkflowError as exc:
            raise api_error(exc) from None
        return Response({"decision": decisions.as_json([decision])[0]})
