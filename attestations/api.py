"""The client's attestation endpoints (the hosted service's paths and bodies): thin HTTP
wrappers around `attestations.services` and `attestations.keys`."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.api.errors import ApiError
from governance.api.middleware import request_id_of
from governance.api.views import ClientApiView, json_object
from workflows.services import WorkflowError

from . import keys, services


class AttestView(ClientApiView):
    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT,
                   summary="Sign an attestation binding an artifact's digest to its governance (201; 200 on replay)")
    def post(self, request):
        data = json_object(request)
        customer = request.user.customer
        response = self.idempotent(
            request, data, lambda: services.issue_attestation(customer, data, request_id=request_id_of(request)))
        if response.status_code == 200 or response.get("X-AEGIS-Idempotent-Replayed"):
            response.status_code = 200
            response["X-AEGIS-Idempotent-Replayed"] = "true"
        return response


class VerifyView(ClientApiView):
    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT,
                   summary="Verify an envelope (200 whenever verification ran: see valid and error_class)")
    def post(self, request):
        return Response(services.verify(request.user.customer, json_object(request),
                                        request_id=request_id_of(request)))


class AttestationDetailView(ClientApiView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="One of this tenant's attestations",
                   operation_id="get_attestation")
    def get(self, request, decision_id: str):
        services.checked_uuid({"decision_id": decision_id}, "decision_id")
        try:
            attestation = services.find(decision_id, customer=request.user.customer)
        except WorkflowError:
            raise ApiError(404, "not_found", f"No attestation {decision_id.lower()}") from None
        return Response(services.record(attestation))


class PublicKeysView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    renderer_classes = [JSONRenderer]

    @extend_schema(responses=OpenApiTypes.OBJECT, summary="The public keys attestations are signed with (no key needed)")
    def get(self, request):
        return Response({"keys": keys.public_keys()})
