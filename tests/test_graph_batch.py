"""``SyncGraphClient.batch_get``: per-item reads in ``$batch`` posts, throttled sub-requests retried.

Against the local tenant, which follows Graph's batching page (graph-api.md §2.16): at most 20
requests per batch, each sub-request charged and throttled on its own (a sub-status 429 with its
own Retry-After; the envelope stays 200).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from config.settings import Settings
from connectors.auth import Authenticator
from connectors.graph import build_sync_graph_client


def _batch_posts(admin: httpx.Client) -> int:
    return int(admin.get("/stats").json()["by_route"].get("graph.batch", 0))


def _inside_retry_after(admin: httpx.Client) -> int:
    return int(admin.get("/stats").json()["total_requests_inside_retry_after"])


def _file_ids(graph: httpx.Client, drive: str, unique: str) -> list[str]:
    """The generated files' ids: they hang below ``/unique`` and its one subfolder."""
    top = graph.get(f"/drives/{drive}/root:/{unique}:/children?$top=200").raise_for_status().json()["value"]
    folder = next(c for c in top if "folder" in c)
    inner = graph.get(f"/drives/{drive}/items/{folder['id']}/children?$top=200").raise_for_status().json()["value"]
    return [c["id"] for c in [*top, *inner] if "file" in c]


def test_many_reads_go_in_batches_of_twenty_in_order(tenant_info: dict[str, Any], admin: httpx.Client,
                                                      unique: str, tmp_path: Path) -> None:
    admin.post("/seed", json={"generate": {"files": 45, "folders": 1, "depth": 1, "seed": 7,
                                           "under": f"/{unique}"}}).raise_for_status()
    settings = Settings.load(env_file=None, tenant_file=Path(tenant_info["data_dir"]) / "tenant.json",
                             store={"data_dir": str(tmp_path)})
    auth = Authenticator(settings)
    drive = tenant_info["drive_id"]
    with build_sync_graph_client(settings, auth) as graph:
        ids = _file_ids(graph, drive, unique)
        assert len(ids) == 45
        urls = [f"/drives/{drive}/items/{i}" for i in ids]
        urls.insert(10, f"/drives/{drive}/items/no-such-item")
        before = _batch_posts(admin)
        bodies = graph.batch_get(urls)
        assert _batch_posts(admin) - before == 3  # 46 reads: 20 + 20 + 6
    auth.close()
    assert bodies[10] is None  # a 404 is "not there", not an error
    assert [b["id"] for b in bodies if b is not None] == ids  # the order of the URLs, not of the responses


def test_throttled_sub_requests_are_sent_again_after_their_retry_after(
        tenant_info: dict[str, Any], admin: httpx.Client, unique: str, tmp_path: Path) -> None:
    admin.post("/seed", json={"generate": {"files": 30, "folders": 1, "depth": 1, "seed": 8,
                                           "under": f"/{unique}"}}).raise_for_status()
    settings = Settings.load(env_file=None, tenant_file=Path(tenant_info["data_dir"]) / "tenant.json",
                             store={"data_dir": str(tmp_path)}, http={"max_retries": 10})
    auth = Authenticator(settings)
    drive = tenant_info["drive_id"]
    with build_sync_graph_client(settings, auth) as graph:
        ids = _file_ids(graph, drive, unique)
        throttled_before = admin.get("/stats").json()["by_status"].get("429", 0)
        inside_before = _inside_retry_after(admin)
        admin.post("/faults", json={"rules": [{"kind": "429", "route": "graph.item.get", "probability": 0.3,
                                               "retry_after": "0.5"}]}).raise_for_status()
        try:
            bodies = graph.batch_get([f"/drives/{drive}/items/{i}" for i in ids])
        finally:
            admin.delete("/faults").raise_for_status()
    auth.close()
    assert [b["id"] for b in bodies if b is not None] == ids  # nothing lost
    assert admin.get("/stats").json()["by_status"].get("429", 0) > throttled_before  # the faults did fire
    assert _inside_retry_after(admin) == inside_before  # and no request went out inside a Retry-After
