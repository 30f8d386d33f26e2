"""``/metrics`` of ``cartif-bot run``, in the Prometheus text format (prometheus_client).

Where it sits: ``bot.service.serving`` creates one ``ServiceMetrics``; the runner reports each
finished run (``cycle_finished``), the API counts its requests, and outgoing HTTP traffic is
counted at the one place every request of the process passes: the retry layer
(``connectors.retrying``, its ``OBSERVERS`` hook), labelled by ``api`` — "graph" (the SDK, $batch,
delta pages, the small sync Graph clients), "sharepoint" (office365-rest-python-client's REST
calls through ``RetryingAdapter``) and "teams" (the Workflows webhooks). A private registry keeps
tests and several services in one process apart.

Series (all prefixed ``cartif_``): ``cycles_total{outcome}``, ``cycle_duration_seconds``
(histogram), ``step_duration_seconds{step}``, ``changes_total{kind}``, ``permission_changes_total``,
``drift_findings`` (last cycle), ``http_requests_total{api,method,status}`` (every response,
retried attempts included), ``http_throttled_total{api,status}`` (429 and 503),
``http_retries_total{api,reason}`` and ``http_retry_wait_seconds_total{api,reason}`` (reason
"retry_after": the service's Retry-After; "backoff": our back-off after a 5xx, reset or timeout),
``api_requests_total{route,status}``, ``outbox_depth``, ``last_success_timestamp_seconds``,
``leader`` (1 on the replica holding the lock).
"""

from __future__ import annotations

from typing import get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from bot.service.running import Run
from connectors import retrying

__all__ = ["CONTENT_TYPE_LATEST", "ServiceMetrics"]

#: Cycles last from well under a second (nothing changed) to minutes (a first listing of a large
#: library, a permission repair after a reorganisation).
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class ServiceMetrics:
    """The service's series in a registry of their own (see the module docstring)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.cycles = Counter("cartif_cycles", "Cycles finished, by outcome", ["outcome"], registry=r)
        self.duration = Histogram("cartif_cycle_duration_seconds", "Cycle duration", buckets=DURATION_BUCKETS,
                                  registry=r)
        self.step_duration = Histogram("cartif_step_duration_seconds", "Step duration", ["step"],
                                       buckets=DURATION_BUCKETS, registry=r)
        self.changes = Counter("cartif_changes", "Changes the sync found, by kind", ["kind"], registry=r)
        self.permission_changes = Counter("cartif_permission_changes", "Permission changes applied", registry=r)
        self.drift = Gauge("cartif_drift_findings", "Permission differences found by the last cycle", registry=r)
        self.http_requests = Counter("cartif_http_requests", "Responses from Graph, SharePoint REST and Teams "
                                     "webhooks (every attempt), by API, method and status",
                                     ["api", "method", "status"], registry=r)
        self.throttled = Counter("cartif_http_throttled", "Responses 429 or 503, by API and status",
                                 ["api", "status"], registry=r)
        self.retries = Counter("cartif_http_retries", "Requests retried by the retry layer, by API and whose "
                               "delay was waited (retry_after, backoff)", ["api", "reason"], registry=r)
        self.retry_wait = Counter("cartif_http_retry_wait_seconds", "Seconds waited before retries, by API and "
                                  "reason (retry_after, backoff)", ["api", "reason"], registry=r)
        self.rate_limit_holds = Counter("cartif_http_rate_limit_holds", "Times every request was held because "
                                        "RateLimit-Remaining said the budget was nearly spent, by API",
                                        ["api"], registry=r)
        self.rate_limit_hold_seconds = Counter("cartif_http_rate_limit_hold_seconds", "Seconds of those holds, "
                                               "by API", ["api"], registry=r)
        self.api_requests = Counter("cartif_api_requests", "Requests to the service's HTTP API",
                                    ["route", "status"], registry=r)
        self.outbox_depth = Gauge("cartif_outbox_depth", "Pending outbox messages (notices to post)", registry=r)
        self.last_success = Gauge("cartif_last_success_timestamp_seconds", "Unix time of the last fully "
                                  "successful cycle", registry=r)
        self.leader = Gauge("cartif_leader", "1 when this replica holds the leader lock", registry=r)
        for outcome in ("succeeded", "partial", "failed", "interrupted"):
            self.cycles.labels(outcome)  # present at 0 from the start, so rates work from the first scrape
        for api in get_args(retrying.Api):
            for reason in ("retry_after", "backoff"):
                self.retries.labels(api, reason)
                self.retry_wait.labels(api, reason)
            self.rate_limit_holds.labels(api)
            self.rate_limit_hold_seconds.labels(api)

    def install(self) -> None:
        retrying.OBSERVERS.append(self._transport_event)

    def uninstall(self) -> None:
        if self._transport_event in retrying.OBSERVERS:
            retrying.OBSERVERS.remove(self._transport_event)

    def _transport_event(self, event: retrying.TransportEvent) -> None:
        if event.kind == "response":
            self.http_requests.labels(event.api, event.method, str(event.status)).inc()
            if event.status in retrying.THROTTLED:
                self.throttled.labels(event.api, str(event.status)).inc()
        elif event.kind == "wait":
            self.retries.labels(event.api, event.reason).inc()
            self.retry_wait.labels(event.api, event.reason).inc(event.seconds)
        elif event.kind == "hold":
            self.rate_limit_holds.labels(event.api).inc()
            self.rate_limit_hold_seconds.labels(event.api).inc(event.seconds)

    def cycle_finished(self, run: Run, finished_at: float) -> None:
        if run.status == "skipped":
            return
        self.cycles.labels(run.status).inc()
        if run.seconds is not None:
            self.duration.observe(run.seconds)
        for step in run.steps:
            if step.seconds is not None:
                self.step_duration.labels(step.name).observe(step.seconds)
            if step.name == "sync" and step.status == "succeeded":
                for key, value in step.counts.items():
                    if key.startswith("changes_"):
                        self.changes.labels(key.removeprefix("changes_")).inc(value)
            if step.name == "permissions" and step.status == "succeeded":
                self.permission_changes.inc(step.counts.get("applied", 0))
                self.drift.set(step.counts.get("drift", 0))
        if run.status == "succeeded":
            self.last_success.set(finished_at)

    def render(self) -> bytes:
        return generate_latest(self.registry)
