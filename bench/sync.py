"""``python -m bench sync [SIZES…]``: first crawl by delta vs a naive recursive children walk.

For each size (default 1000 and 10000 generated items) on a fresh local tenant: the first
``Syncer`` crawl (requests and resource units counted by the tenant, wall time, client-side
processing rate, peak RSS of this process), an incremental cycle after 10 changes, and a
naive recursive ``/children`` walk of the same tree (what a client without delta does), with
the ratio of requests. Results are printed as a Markdown table to paste into docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bot.store import Store
from bot.syncing import Syncer
from config.settings import Settings
from connectors.auth import Authenticator
from connectors.graph import build_graph_client
from connectors.graph_delta import GraphDeltaReader
from emulator.process import LocalTenantProcess


def _stats(admin: httpx.Client) -> tuple[int, int]:
    data = admin.get("/stats").json()
    return int(data["total_requests"]), int(data["total_resource_units"])


async def _naive_walk(graph_url: str, drive_id: str, token: str, ca: str) -> int:
    requests = 0
    async with httpx.AsyncClient(base_url=graph_url, verify=ca, trust_env=False, timeout=60,
                                 headers={"Authorization": f"Bearer {token}"}) as client:
        stack = ["root"]
        while stack:
            url: str | None = f"/drives/{drive_id}/items/{stack.pop()}/children?$top=200"
            while url:
                requests += 1
                data = (await client.get(url)).raise_for_status().json()
                stack.extend(i["id"] for i in data["value"] if "folder" in i)
                url = data.get("@odata.nextLink")
    return requests


async def _one(size: int, work: Path) -> dict[str, Any]:
    tenant = LocalTenantProcess(work / f"tenant-{size}", extra=["--ru-per-minute", "100000000"])
    info = tenant.start()
    try:
        admin = httpx.Client(base_url=info["admin_url"], verify=info["ca_path"], trust_env=False, timeout=300)
        folders = max(1, size // 10)
        admin.post("/seed", json={"generate": {"files": size - folders, "folders": folders, "depth": 3}})
        settings = Settings.load(env_file=None, tenant_file=Path(info["data_dir"]) / "tenant.json",
                                 store={"data_dir": str(work / f"store-{size}")})
        auth = Authenticator(settings)
        graph = build_graph_client(settings, auth)
        reader = GraphDeltaReader(graph, info["drive_id"], page_size=settings.sync.page_size)
        out: dict[str, Any] = {"items": size}
        with Store.open(settings.store.url) as store:
            syncer = Syncer(store, reader, info["drive_id"], own_app_id=settings.auth.client_id)
            before = _stats(admin)
            t0 = time.perf_counter()
            first = await syncer.run()
            after = _stats(admin)
            out.update(crawl_s=time.perf_counter() - t0, crawl_requests=after[0] - before[0],
                       crawl_ru=after[1] - before[1], tracked=first.tracked,
                       rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
            token = await asyncio.to_thread(auth.token, __import__("connectors.auth").auth.Resource.GRAPH)
            # Ten changes, then one incremental cycle.
            for i in range(10):
                admin.post("/seed", json={"generate": {"files": 1, "folders": 0, "depth": 1, "seed": 1000 + i,
                                                       "under": f"/bench-changes-{i}"}})
            before = _stats(admin)
            inc = await syncer.run()
            out.update(inc_requests=_stats(admin)[0] - before[0], inc_changes=len(inc.changes))
        before = _stats(admin)
        t0 = time.perf_counter()
        naive = await _naive_walk(info["graph_url"], info["drive_id"], token.value, info["ca_path"])
        out.update(naive_requests=naive, naive_s=time.perf_counter() - t0)
        # Client-side processing rate: parse + reconcile of the crawl's pages, without the network.
        out["client_items_per_s"] = first.items_seen / first.processing_seconds if first.processing_seconds else 0
        auth.close()
        admin.close()
        return out
    finally:
        tenant.stop()


def main(argv: list[str]) -> int:
    sizes = [int(a) for a in argv] or [1000, 10000]
    with tempfile.TemporaryDirectory() as tmp:
        rows = [asyncio.run(_one(size, Path(tmp))) for size in sizes]
    print("| items | first crawl: requests | RU | wall s | peak RSS MB | incremental after 10 changes: "
          "requests / changes | naive children walk: requests | wall s | ratio | client items/s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['items']} | {r['crawl_requests']} | {r['crawl_ru']} | {r['crawl_s']:.2f} | {r['rss_mb']:.0f} | "
              f"{r['inc_requests']} / {r['inc_changes']} | {r['naive_requests']} | {r['naive_s']:.2f} | "
              f"{r['naive_requests'] / max(r['crawl_requests'], 1):.0f}× | {r['client_items_per_s']:,.0f} |")
    sys.stdout.flush()
    return 0
