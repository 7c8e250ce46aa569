"""Prometheus metrics (PLATFORM.md §7), and the /metrics endpoint.

Under gunicorn with several workers, set PROMETHEUS_MULTIPROC_DIR to an empty directory
before the server starts (see aegis_site/gunicorn.conf.py): each worker then writes its
samples there and /metrics aggregates them, whichever worker answers.

Backups, audit verifications and drift reports are done by Celery workers and management
commands, in other processes or on other hosts than the web server, so their metrics are
not counted in memory: `StoredWorkCollector` reads them from the database at scrape time.
Likewise `CeleryQueueCollector` reads the Celery queue's length from the broker. The alert
rules and dashboard in deploy/ use these names; governance/monitoring.py checks them.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import time

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

logger = logging.getLogger(__name__)

DECISIONS = Counter("aegis_decisions_total", "Decisions made", ["status", "shadow"])
GATE_RESULTS = Counter("aegis_gate_results_total", "Gate evaluations", ["gate", "result"])
DECISION_LATENCY = Histogram("aegis_decision_latency_seconds", "Time to decide and record one proposal",
                             buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0))
CALIBRATION_PROPOSALS = Counter("aegis_calibration_proposals_total", "Calibration proposal steps", ["status"])
WORKFLOW_TRANSITIONS = Counter("aegis_workflow_transitions_total", "Workflow transitions", ["workflow_type"])
HTTP_REQUESTS = Counter("aegis_http_requests_total", "HTTP requests", ["method", "status"])
SERVER_ERRORS = Counter("aegis_server_errors_total", "Requests answered 500 by an unhandled exception",
                        ["exception"])
ATTESTATIONS = Counter("aegis_attestations_total", "Attestations issued, and envelopes verified valid or invalid",
                       ["result"])
HTTP_LATENCY = Histogram("aegis_http_request_duration_seconds", "HTTP request duration", ["method"])
# /evaluate on its own: the alert rules watch its error ratio and p99 latency (deploy/prometheus).
EVALUATE_REQUESTS = Counter("aegis_evaluate_requests_total", "Requests to /evaluate", ["status"])
EVALUATE_LATENCY = Histogram("aegis_evaluate_request_duration_seconds", "Duration of requests to /evaluate",
                             buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))


def _timestamp(moment) -> float:
    """Unix seconds of a stored time; 0 for never, so `time() - x > 26h` alerts on it too."""
    return moment.timestamp() if moment else 0.0


class StoredWorkCollector:
    """aegis_backups_total, aegis_audit_verifications_total and aegis_drift_kl_divergence,
    from the append-only telemetry events, the verification runs and the drift reports; the
    times of the last successful backup and verification, the broken chains the newest
    verification found, the drift thresholds and the configuration versions this process
    refuses to serve, which the alert rules (deploy/prometheus) watch. `describe` names the
    families without touching the database (the preflight's list of exported metrics reads
    it); `collect` fills them in."""

    def describe(self):
        return [
            CounterMetricFamily("aegis_backups", "Scheduled backups", labels=["result"]),
            GaugeMetricFamily("aegis_backup_last_success_timestamp_seconds",
                              "When the newest successful backup finished (0: never)", labels=[]),
            CounterMetricFamily("aegis_audit_verifications", "Audit chain verification runs", labels=["result"]),
            GaugeMetricFamily("aegis_audit_verification_last_success_timestamp_seconds",
                              "When the newest verification run that found every chain valid finished (0: never)",
                              labels=[]),
            GaugeMetricFamily("aegis_audit_verification_broken_chains",
                              "Broken chains found by the newest finished verification run", labels=[]),
            GaugeMetricFamily("aegis_drift_kl_divergence", "Latest daily KL divergence per tenant", labels=["tenant"]),
            GaugeMetricFamily("aegis_drift_kl_threshold",
                              "The warning and critical KL thresholds the latest daily report used",
                              labels=["tenant", "level"]),
            GaugeMetricFamily("aegis_configuration_rejected_versions",
                              "Stored configuration versions that do not verify and are not served", labels=[]),
            GaugeMetricFamily("aegis_ledger_head_seq", "Sequence number of the newest chained ledger entry",
                              labels=[]),
            GaugeMetricFamily("aegis_ledger_anchor_seq",
                              "Sequence number the ledger anchor file records (0: none, or it does not verify)",
                              labels=[]),
        ]

    def collect(self):
        from django.db.models import Count, Max, OuterRef, Subquery

        from workflows.models import ChainVerificationRun

        from .models import DriftReport, TelemetryEvent

        from calibration.versions import configuration_status
        from ledger.anchors import AnchorProblem, read_anchor
        from ledger.services import chained_head

        (backups, last_backup, verifications, last_valid, broken_chains, drift, thresholds,
         rejected_configurations, ledger_head, ledger_anchor) = self.describe()

        results = {"backup.succeeded": "succeeded", "backup.failed": "failed"}
        counted = dict(TelemetryEvent.objects.filter(name__in=results).order_by().values_list("name")
                       .annotate(n=Count("id")))
        for name, result in results.items():
            backups.add_metric([result], counted.get(name, 0))
        newest_backup = TelemetryEvent.objects.filter(name="backup.succeeded").aggregate(at=Max("occurred_at"))["at"]
        last_backup.add_metric([], _timestamp(newest_backup))

        finished = ChainVerificationRun.objects.exclude(finished_at=None)
        verifications.add_metric(["valid"], finished.filter(broken=0).count())
        verifications.add_metric(["broken"], finished.filter(broken__gt=0).count())
        last_valid.add_metric([], _timestamp(finished.filter(broken=0).aggregate(at=Max("finished_at"))["at"]))
        broken_chains.add_metric([], finished.order_by("-finished_at", "-pk").values_list("broken", flat=True).first()
                                 or 0)

        newest = DriftReport.objects.filter(customer=OuterRef("customer")).order_by("-day").values("pk")[:1]
        for tenant, kl, warning, critical in (
                DriftReport.objects.filter(pk=Subquery(newest)).order_by()
                .values_list("customer__customer_id", "kl_divergence", "tau_warning", "tau_critical")):
            drift.add_metric([tenant], kl)
            thresholds.add_metric([tenant, "warning"], warning)
            thresholds.add_metric([tenant, "critical"], critical)
        rejected_configurations.add_metric([], len(configuration_status().rejected))
        ledger_head.add_metric([], chained_head()[0])
        try:
            anchor = read_anchor()
        except AnchorProblem:
            anchor = None
        ledger_anchor.add_metric([], anchor.seq if anchor else 0)
        yield from (backups, last_backup, verifications, last_valid, broken_chains, drift, thresholds,
                    rejected_configurations, ledger_head, ledger_anchor)


class CeleryQueueCollector:
    """aegis_celery_queue_length: tasks waiting in the broker's default queue, read from the
    broker at scrape time (the workers that drain it are other processes). Without a broker
    (REDIS_URL unset) tasks run inline in the caller and nothing ever waits: 0. A broker that
    does not answer gives no sample, so the scrape itself still succeeds."""

    def __init__(self, app=None):
        self.app = app  # None: the current (the project's) Celery app

    def describe(self):
        return [GaugeMetricFamily("aegis_celery_queue_length", "Tasks waiting in the Celery broker queue",
                                  labels=["queue"])]

    def collect(self):
        from celery import current_app
        from kombu.exceptions import ChannelError

        app = self.app or current_app
        queue = app.conf.task_default_queue
        [length] = self.describe()
        if app.conf.task_always_eager:
            length.add_metric([queue], 0)
        else:
            try:
                with app.connection_for_read(connect_timeout=2, transport_options={"max_retries": 0}) as connection:
                    length.add_metric([queue], connection.default_channel.queue_declare(
                        queue=queue, passive=True).message_count)
            except ChannelError:  # "NOT_FOUND": a queue holding nothing (Redis keeps no empty list)
                length.add_metric([queue], 0)
            except Exception as exc:  # noqa: BLE001 - the broker's many transport errors
                logger.warning("Celery broker unreachable for aegis_celery_queue_length: %s", type(exc).__name__)
        yield length


STORED_WORK_COLLECTORS = (StoredWorkCollector(), CeleryQueueCollector())
_STORED_WORK = CollectorRegistry(auto_describe=False)
for _collector in STORED_WORK_COLLECTORS:
    _STORED_WORK.register(_collector)


class RequestMetricsMiddleware:
    """Counts every request by method and status, and times it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        method = request.method if request.method in {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"} else "OTHER"
        HTTP_REQUESTS.labels(method=method, status=str(response.status_code)).inc()
        elapsed = time.perf_counter() - started
        HTTP_LATENCY.labels(method=method).observe(elapsed)
        match = request.resolver_match
        if match is not None and match.view_name == "evaluate":
            EVALUATE_REQUESTS.labels(status=str(response.status_code)).inc()
            EVALUATE_LATENCY.observe(elapsed)
        return response


def _allowed(request) -> bool:
    """With AEGIS_METRICS_TOKEN set, a matching bearer token; otherwise loopback clients only.
    A request a proxy forwarded (X-Forwarded-For / Forwarded) arrives from the proxy's
    address, often loopback, whoever sent it: it is never taken for a loopback client."""
    token = settings.AEGIS_METRICS_TOKEN
    if token:
        scheme, _, given = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        return scheme.lower() == "bearer" and secrets.compare_digest(given.strip(), token)
    if "HTTP_X_FORWARDED_FOR" in request.META or "HTTP_FORWARDED" in request.META:
        return False
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


def metrics_view(request):
    if not _allowed(request):
        return JsonResponse({"error": "Metrics are served to loopback clients or with AEGIS_METRICS_TOKEN",
                             "code": "forbidden", "request_id": getattr(request, "aegis_request_id", "")},
                            status=403)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        output = generate_latest(registry)
    else:
        output = generate_latest()
    return HttpResponse(output + generate_latest(_STORED_WORK), content_type=CONTENT_TYPE_LATEST)
