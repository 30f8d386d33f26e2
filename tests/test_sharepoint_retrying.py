"""SharePoint REST under the one retry layer: office365-rest-python-client's requests go through
``connectors.retrying.RetryingAdapter``, so 429s with Retry-After are waited out — by every request
of the process — and 500s on writes are not replayed.

We test this against the local tenant's fault injection (``/_admin/faults``), counting on the
tenant's side that no request arrived inside a Retry-After window.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

from connectors.auth import Authenticator
from connectors.sharepoint import SHAREPOINT_GATE, build_sharepoint_context
from tests.test_syncing import settings_for


def test_throttled_sharepoint_requests_wait_out_retry_after_and_succeed(
        tenant_info: dict[str, Any], admin: httpx.Client, tmp_path: Path) -> None:
    settings = settings_for(tenant_info, tmp_path, http={"retry_delay_seconds": 0.1})
    authenticator = Authenticator(settings)
    admin.post("/stats/reset").raise_for_status()
    admin.post("/faults", json={"rules": [
        {"kind": "429", "route": "sp.rest", "count": 2, "retry_after": "0.7"}]}).raise_for_status()
    try:
        ctx = build_sharepoint_context(settings, authenticator)
        web = ctx.web.get().execute_query()
    finally:
        admin.delete("/faults")
        authenticator.close()
    assert web.title
    stats = admin.get("/stats").json()
    assert stats["by_status"].get("429", 0) == 2
    assert stats["total_requests_inside_retry_after"] == 0
    assert SHAREPOINT_GATE.until > 0  # the pause was shared, not per request


def test_a_connection_reset_on_a_write_is_not_replayed(
        tenant_info: dict[str, Any], admin: httpx.Client, tmp_path: Path) -> None:
    # One reset, then the tenant would answer: only a replay could make the call succeed.
    settings = settings_for(tenant_info, tmp_path, http={"retry_delay_seconds": 0.1})
    authenticator = Authenticator(settings)
    admin.post("/faults", json={"rules": [
        {"kind": "reset", "path": "(?i)ensureuser", "method": "POST", "count": 1}]}).raise_for_status()
    try:
        ctx = build_sharepoint_context(settings, authenticator)
        with pytest.raises(requests.ConnectionError):
            ctx.web.ensure_user("i:0#.f|membership|nobody@example.org").execute_query()
    finally:
        admin.delete("/faults")
        authenticator.close()
