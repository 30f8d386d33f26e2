"""``/metrics`` of ``cartif-bot run``, in the Prometheus text format (prometheus_client).

Where it sits: ``bot.service.serving`` creates one ``ServiceMetrics``; the runner reports each
finished run (``cycle_finished``), the API counts its requests, and Graph traffic is counted at
the one place every Graph request passes: ``connectors.retrying.RetryingTransport`` (its
``OBSERVERS`` hook). A private registry keeps tests and several services in one process apart.

Series (all prefixed ``cartif_``): ``cycles_total{outcome}``, ``cycle_duration_seconds``
(histogram), ``step_duration_seconds{step}``, ``changes_total{kind}``, ``permission_changes_total``,
``drift_findings`` (last cycle), ``graph_requests_total{method,status}``,
``graph_retry_wait_seconds_total``, ``graph_throttled_total``, ``api_requests_total{route,status}``,
``outbox_depth``, ``last_success_timestamp_seconds``, ``leader`` (1 on the replica holding the lock).
"""

from __future__ import annotations

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
        self.graph_requests = Counter("cartif_graph_requests", "Graph responses, by method and status",
                                      ["method", "status"], registry=r)
        self.retry_wait = Counter("cartif_graph_retry_wait_seconds", "Seconds waited before Graph retries "
                                  "(back-off and Retry-After)", registry=r)
        self.throttled = Counter("cartif_graph_throttled", "Graph responses 429 or 503", registry=r)
        self.api_requests = Counter("cartif_api_requests", "Requests to the service's HTTP API",
                                    ["route", "status"], registry=r)
        self.outbox_depth = Gauge("cartif_outbox_depth", "Pending outbox messages (notices to post)", registry=r)
        self.last_success = Gauge("cartif_last_success_timestamp_seconds", "Unix time of the last fully "
                                  "successful cycle", registry=r)
        self.leader = Gauge("cartif_leader", "1 when this replica holds the leader lock", registry=r)
        for outcome in ("succeeded", "partial", "failed", "interrupted"):
            self.cycles.labels(outcome)  # present at 0 from the start, so rates work from the first scrape

    def install(self) -> None:
        retrying.OBSERVERS.append(self._transport_event)

    def uninstall(self) -> None:
        if self._transport_event in retrying.OBSERVERS:
            retrying.OBSERVERS.remove(self._transport_event)

    def _transport_event(self, event: str, method: str, status: int, seconds: float) -> None:
        if event == "response":
            self.graph_requests.labels(method, str(status)).inc()
            if status in (429, 503):
                self.throttled.inc()
        elif event == "wait":
            self.retry_wait.inc(seconds)

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
