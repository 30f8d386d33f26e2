"""The service's HTTP counters, labelled by API, are fed by the one retry layer for every API.

We test these aspects, against the local tenant with the real SDKs and clients:

* a SharePoint REST call (``connectors.sharepoint.rest_call``, office365-rest-python-client under
  ``RetryingAdapter``) throttled once with a Retry-After moves the sharepoint series — requests by
  status, throttled, retries and Retry-After seconds — and none of the graph ones;
* a Graph call (the sync Graph client) and a Teams Workflows post are counted under their own
  ``api`` label, a connection reset on Graph as a back-off retry;
* the rendered Prometheus text names the series with their labels (the /metrics body);
* an uninstalled ``ServiceMetrics`` counts nothing more.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.service.metrics import ServiceMetrics
from connectors.auth import Authenticator
from connectors.graph import build_sync_graph_client
from connectors.sharepoint import build_sharepoint_context, rest_call
from connectors.teams import build_workflows_notifier
from tests.test_syncing import settings_for

CARD = {"type": "AdaptiveCard", "$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "version": "1.4",
        "body": [{"type": "TextBlock", "text": "metrics test", "wrap": True}]}


@pytest.fixture
def metrics() -> Iterator[ServiceMetrics]:
    m = ServiceMetrics()
    m.install()
    try:
        yield m
    finally:
        m.uninstall()


def value(m: ServiceMetrics, name: str, **labels: str) -> float:
    found = m.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def test_a_throttled_sharepoint_rest_call_is_counted_under_sharepoint(
        metrics: ServiceMetrics, tenant_info: dict[str, Any], admin: httpx.Client, tmp_path: Path) -> None:
    settings = settings_for(tenant_info, tmp_path, http={"retry_delay_seconds": 0.1})
    authenticator = Authenticator(settings)
    admin.post("/faults", json={"rules": [
        {"kind": "429", "route": "sp.rest", "count": 1, "retry_after": "0.3"}]}).raise_for_status()
    try:
        ctx = build_sharepoint_context(settings, authenticator)
        web = rest_call(ctx, "GET", "web")
    finally:
        admin.delete("/faults")
        authenticator.close()
    assert web["Title"]
    sp = {"api": "sharepoint", "method": "GET"}
    assert value(metrics, "cartif_http_requests_total", **sp, status="429") == 1
    assert value(metrics, "cartif_http_requests_total", **sp, status="200") >= 1
    assert value(metrics, "cartif_http_throttled_total", api="sharepoint", status="429") == 1
    assert value(metrics, "cartif_http_retries_total", api="sharepoint", reason="retry_after") == 1
    assert value(metrics, "cartif_http_retries_total", api="sharepoint", reason="backoff") == 0
    assert value(metrics, "cartif_http_retry_wait_seconds_total", api="sharepoint",
                 reason="retry_after") == pytest.approx(0.3)
    # Nothing of it was taken for Graph traffic.
    assert value(metrics, "cartif_http_throttled_total", api="graph", status="429") == 0
    assert value(metrics, "cartif_http_retries_total", api="graph", reason="retry_after") == 0
    text = metrics.render().decode()
    assert 'cartif_http_requests_total{api="sharepoint",method="GET",status="429"} 1.0' in text
    assert 'cartif_http_retries_total{api="sharepoint",reason="retry_after"} 1.0' in text
    assert 'cartif_http_throttled_total{api="sharepoint",status="429"} 1.0' in text
    assert 'cartif_http_retry_wait_seconds_total{api="sharepoint",reason="retry_after"} 0.3' in text


async def test_graph_and_teams_calls_are_counted_under_their_own_label(
        metrics: ServiceMetrics, tenant_info: dict[str, Any], admin: httpx.Client, tmp_path: Path) -> None:
    settings = settings_for(tenant_info, tmp_path, http={"retry_delay_seconds": 0.05})
    authenticator = Authenticator(settings)
    channel = next(iter(settings.teams.webhooks))
    admin.post("/faults", json={"rules": [
        {"kind": "reset", "path": "/sites/", "method": "GET", "count": 1},
        {"kind": "429", "route": "teams.webhook", "count": 1, "retry_after": "0.2"}]}).raise_for_status()
    notifier = build_workflows_notifier(settings)
    try:
        with build_sync_graph_client(settings, authenticator) as graph:
            graph.get(f"/sites/{settings.endpoints.site_id}").raise_for_status()
        await notifier.post(channel, CARD, key="metrics-test")
    finally:
        admin.delete("/faults")
        await notifier.aclose()
        authenticator.close()
    assert value(metrics, "cartif_http_requests_total", api="graph", method="GET", status="200") >= 1
    assert value(metrics, "cartif_http_retries_total", api="graph", reason="backoff") == 1
    assert value(metrics, "cartif_http_retry_wait_seconds_total", api="graph", reason="backoff") > 0
    assert value(metrics, "cartif_http_requests_total", api="teams", method="POST", status="429") == 1
    assert value(metrics, "cartif_http_throttled_total", api="teams", status="429") == 1
    assert value(metrics, "cartif_http_retries_total", api="teams", reason="retry_after") == 1
    assert value(metrics, "cartif_http_requests_total", api="sharepoint", method="GET", status="200") == 0


def test_an_uninstalled_metrics_object_counts_nothing(
        tenant_info: dict[str, Any], tmp_path: Path) -> None:
    m = ServiceMetrics()
    m.install()
    m.uninstall()
    settings = settings_for(tenant_info, tmp_path)
    authenticator = Authenticator(settings)
    try:
        rest_call(build_sharepoint_context(settings, authenticator), "GET", "web")
    finally:
        authenticator.close()
    assert value(m, "cartif_http_requests_total", api="sharepoint", method="GET", status="200") == 0
