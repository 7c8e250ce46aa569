"""Client-facing endpoints (API.md): thin HTTP wrappers around `governance.services`."""

from __future__ import annotations

import re
from typing import Any

from django.db import connection
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance import __version__, services
from governance import decisions as decision_verbs
from calibration.versions import active_config, configuration_status
from governance.engine.inputs import InputError, parse_proposal
from governance.idempotency import run_idempotent
from governance.models import Decision
from workflows.services import WorkflowError

from .auth import ApiKeyAuthentication
from .errors import ApiError
from .middleware import request_id_of

# ASCII digits only (\d also matches other scripts' digits); matched with fullmatch, since
# `$` would also accept a trailing newline.
MONTH_PATTERN = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")
DECISIONS_DEFAULT_LIMIT = 50
DECISIONS_MAX_LIMIT = 500


def parse_month(month: str) -> tuple[int, int]:
    """(year, month number) of a `YYYY-MM` month; year 0000 is refused, as no date has it."""
    match = MONTH_PATTERN.fullmatch(month)
    if match is None or int(match[1]) < 1:
        raise ApiError(400, "invalid_request",
                       f"month must be YYYY-MM with a year from 0001 to 9999 and a month from 01 to 12, got {month!r}")
    return int(match[1]), int(match[2])


def input_error(exc: InputError) -> ApiError:
    if exc.kind == InputError.UNKNOWN_FIELD:
        return ApiError(422, "unknown_field", str(exc))
    return ApiError(400, "invalid_request", str(exc))


def json_object(request: Request) -> dict[str, Any]:
    data = request.data
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_request", "The request body must be a JSON object")
    return data


def channel_of(request: Request) -> str:
    client = request.headers.get("X-AEGIS-Client", "").strip().lower()
    if client == "python-sdk":
        return Decision.Channel.SDK
    if client == "mcp":
        return Decision.Channel.MCP
    return Decision.Channel.API


class ClientApiView(APIView):
    """Base for keyed client endpoints: API-key auth, JSON only, per-minute throttle."""

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [IsAuthenticated]
    renderer_classes = [JSONRenderer]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        services.enforce_rate_limit(request.user.customer)

    def context(self, request: Request) -> services.CallContext:
        return services.CallContext(customer=request.user.customer, api_key=request.user.api_key,
                                    channel=channel_of(request), request_id=request_id_of(request))

    def idempotent(self, request: Request, data: Any, work, last=None) -> Response:
        outcome = run_idempotent(request.user.customer, request.method, request.path,
                                 request.headers.get("Idempotency-Key"), data, work, last)
        response = Response(outcome.body, status=outcome.status)
        if outcome.replayed:
            response["X-AEGIS-Idempotent-Replayed"] = "true"
        return response


class HealthView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    renderer_classes = [JSONRenderer]

    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Service health (no key needed)")
    def get(self, request):
        checks: dict[str, dict[str, Any]] = {}
        try:
            version, _ = active_config()
            checks["config"] = {"ok": True, "version": version}
            # A stored version that does not verify is not served: degraded, named (the
            # reason is for the operators, in preflight and the verification run, not for anyone).
            rejected = [r.version for r in configuration_status().rejected]
            if rejected:
                checks["config"].update(ok=False, rejected=rejected,
                                        error=f"configuration v{rejected[0]} does not verify and is not served")
        except Exception as exc:  # a broken contract or config store must show, not crash
            checks["config"] = {"ok": False, "error": type(exc).__name__}
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            checks["database"] = {"ok": True, "vendor": connection.vendor}
        except Exception as exc:
            checks["database"] = {"ok": False, "error": type(exc).__name__}
        healthy = all(check["ok"] for check in checks.values())
        body = {"status": "ok" if healthy else "degraded", "version": __version__,
                "stage": services.deployment_stage(), "checks": checks}
        return Response(body, status=200 if healthy else 503)


class EvaluateView(ClientApiView):
    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT,
                   summary="Evaluate a proposal through the six gates")
    def post(self, request):
        data = json_object(request)
        try:
            proposal = parse_proposal(data)
        except InputError as exc:
            raise input_error(exc) from None
        ctx = self.context(request)
        key = request.headers.get("Idempotency-Key") or ""
        now = services.timezone.now()  # one moment for the decision and its month's count
        return self.idempotent(
            request, data,
            lambda: (200, services.evaluate_proposal(ctx, proposal, idempotency_key=key, now=now, caller_counts=True)),
            last=lambda: services.count_evaluation(ctx, now))


class SandboxEvaluateView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    renderer_classes = [JSONRenderer]

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT,
                   summary="Evaluate without a key (per-IP daily limit; not stored)")
    def post(self, request):
        try:
            proposal = parse_proposal(json_object(request))
        except InputError as exc:
            raise input_error(exc) from None
        return Response(services.sandbox_evaluate(request.META.get("REMOTE_ADDR", "0.0.0.0"), proposal))


RISK_CHECK_FIELDS = {"risk_score", "threshold", "action_description", "agent_id"}


class RiskCheckView(ClientApiView):
    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT, summary="Quick risk check")
    def post(self, request):
        data = json_object(request)
        unknown = sorted(set(data) - RISK_CHECK_FIELDS)
        if unknown:
            raise ApiError(422, "unknown_field", "Unknown field(s): " + ", ".join(unknown))
        if "risk_score" not in data:
            raise ApiError(400, "invalid_request", "risk_score is required")
        for name, limit in (("action_description", 10_000), ("agent_id", 200)):
            value = data.get(name)
            if value is not None and (not isinstance(value, str) or len(value) > limit):
                raise ApiError(400, "invalid_request", f"{name} must be a string of at most {limit} characters")
        try:
            result = services.quick_risk_check(self.context(request), data["risk_score"], data.get("threshold", 0.3))
        except InputError as exc:
            raise input_error(exc) from None
        return Response(result)


def iso(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class ProfileView(ClientApiView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="The calling tenant and its tier")
    def get(self, request):
        customer = request.user.customer
        tier = customer.tier
        return Response({
            "customer": {
                "customer_id": customer.customer_id, "name": customer.name, "email": customer.email,
                "company": customer.company, "tier": tier.name, "status": customer.status,
                "created_at": iso(customer.created_at), "updated_at": iso(customer.updated_at),
            },
            "tier_details": {
                "name": tier.name, "display_name": tier.display_name,
                "monthly_evaluations": tier.monthly_evaluations, "rate_per_minute": tier.rate_per_minute,
                "max_keys": tier.max_keys, "overage_per_eval": float(tier.overage_per_eval),
                "monthly_price_usd": tier.monthly_price_usd, "features": list(tier.features),
            },
        })


class UsageView(ClientApiView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Usage for this month", operation_id="get_usage")
    def get(self, request, month: str | None = None):
        if month is None:
            month = services.month_of(services.timezone.now())
        else:
            parse_month(month)
        return Response(services.usage_report(request.user.customer, month))


class UsageMonthView(UsageView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Usage for a given YYYY-MM", operation_id="get_usage_month")
    def get(self, request, month: str | None = None):
        return super().get(request, month)


def key_summary(key) -> dict[str, Any]:
    return {"key_id": key.key_id, "name": key.name, "prefix": key.prefix,
            "created_at": int(key.created_at.timestamp()), "enabled": key.enabled}


class KeysView(ClientApiView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="List this tenant's API keys")
    def get(self, request):
        keys = [key_summary(k) for k in request.user.customer.api_keys.all()]
        return Response({"count": len(keys), "keys": keys})

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT,
                   summary="Create an API key (the plaintext is returned only here)")
    def post(self, request):
        data = json_object(request)
        unknown = sorted(set(data) - {"name"})
        if unknown:
            raise ApiError(422, "unknown_field", "Unknown field(s): " + ", ".join(unknown))
        name = data.get("name")
        if not isinstance(name, str) or not name.strip() or len(name.strip()) > 200:
            raise ApiError(400, "invalid_request", "name is required: a non-empty string of at most 200 characters")

        def work():
            key, plaintext = services.create_api_key(request.user.customer, name.strip())
            return 201, {**key_summary(key), "key": plaintext}

        return self.idempotent(request, data, work)


class KeyDetailView(ClientApiView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Revoke an API key")
    def delete(self, request, key_id: str):
        def work():
            services.revoke_api_key(request.user.customer, key_id)
            return 200, {"revoked": True, "key_id": key_id}

        return self.idempotent(request, {}, work)


class DecisionsView(ClientApiView):
    @extend_schema(parameters=[OpenApiParameter("limit", int), OpenApiParameter("month", str)],
                   responses=OpenApiTypes.OBJECT, summary="This tenant's decisions, newest first",
                   operation_id="list_decisions")
    def get(self, request):
        raw_limit = request.query_params.get("limit", str(DECISIONS_DEFAULT_LIMIT))
        if not (raw_limit.isascii() and raw_limit.isdigit()) or not 1 <= int(raw_limit) <= DECISIONS_MAX_LIMIT:
            raise ApiError(400, "invalid_request",
                           f"limit must be an integer from 1 to {DECISIONS_MAX_LIMIT}, got {raw_limit!r}")
        decisions = Decision.objects.filter(customer=request.user.customer)
        month = request.query_params.get("month")
        if month:
            year, number = parse_month(month)
            decisions = decisions.filter(created_at__year=year, created_at__month=number)
        rows = list(decisions[: int(raw_limit)])
        return Response({"decisions": decision_verbs.as_json(rows)})


class DecisionDetailView(ClientApiView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="One of this tenant's decisions",
                   operation_id="get_decision")
    def get(self, request, decision_id: str):
        try:
            decision = decision_verbs.find(decision_id, customer=request.user.customer)
        except WorkflowError:
            raise ApiError(404, "not_found", f"No decision {decision_id!r}") from None
        return Response({"decision": decision_verbs.as_json([decision])[0]})
