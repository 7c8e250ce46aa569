"""POST /api/decisions/<id>/verify: is a stored decision unchanged since it was sealed?

A tenant's API key verifies only that tenant's decisions (another tenant's id answers 404
like a missing one). A signed-in person may verify any decision, including one that was
deleted: its id is still in a seal block, so the answer names it as broken."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from governance import decisions, sealing
from governance.fields import undecryptable_as_marker
from workflows.api import api_error
from workflows.services import WorkflowError

from .auth import acting_as


@extend_schema(request=None, responses=OpenApiTypes.OBJECT, operation_id="verify_decision",
               summary="Verify a stored decision against its seal block (state sealed-valid, unsealed or broken)")
@api_view(["POST"])
@permission_classes([IsAuthenticated])
def verify_decision(request, decision_id):
    _, customer = acting_as(request)
    try:
        # Only the row's id and tenant are used here: a value no key decrypts is reported
        # by the verification as "broken (cannot decrypt)", not answered with a 503.
        with undecryptable_as_marker():
            decision = decisions.find(decision_id, customer=customer)
    except WorkflowError as exc:
        report = sealing.verify_decision(decision_id) if customer is None else None
        if report is None:
            raise api_error(exc) from None
    else:
        report = sealing.verify_decision(decision.decision_id)
        if report is None:  # deleted between the two reads: it was sealed if it is in a block
            raise api_error(WorkflowError(f"No decision {decision_id}", WorkflowError.NOT_FOUND)) from None
    return Response(report.as_json())
