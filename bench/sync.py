"""``python -m bench sync [SIZES…] | latency [N] | storm [ITEMS]``: the delta sync, measured.

``sync [SIZES…]`` — first crawl by delta vs a naive recursive children walk:

For each size (default 1000 and 10000 generated items) on a fresh local tenant: the first
``Syncer`` crawl (requests and resource units counted by the tenant, wall time, client-side
processing rate, peak RSS of this process), an incremental cycle after 10 changes, and a
naive recursive ``/children`` walk of the same tree (what a client without delta does), with
the ratio of requests (for the first crawl, and for the crawl plus the cycle that finds the ten
changes, which the naive client can only find by walking again). Results are printed as a
Markdown table to paste into docs/benchmarks.md.

``sync latency [N]`` (default 50) — change-to-event latency through change notifications: the
receiver (bot/receiver.py) and the watch loop (bot/watching.py) run here; another app makes N
changes one at a time through Graph, each timed from the end of its request until its change is
committed to the change log; p50/p95/max.

``sync storm [ITEMS]`` (default 3000) — a first crawl plus an incremental cycle while 30 % of the delta
requests get 429 with Retry-After 1 or 2 s: completes, nothing lost (store == generated tree), and
the tenant counts the requests that arrived inside a Retry-After window it had given (must be 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import resource
import statistics
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

#: Above this size the naive children walk is not run: at 100k items it takes ~10,000 requests and minutes.
NAIVE_MAX_ITEMS = 10_000


def _stats(admin: httpx.Client) -> tuple[int, int]:
    data = admin.get("/stats").json()
    return int(data["total_requests"]), int(data["total_resource_units"])


def _graph_requests(admin: httpx.Client) -> int:
    """Graph requests the tenant has counted: not the token endpoint, not OpenID discovery, not /_admin."""
    by_route: dict[str, int] = admin.get("/stats").json()["by_route"]
    return sum(n for route, n in by_route.items() if route.startswith("graph."))


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
            before_routes = admin.get("/stats").json()["by_route"]
            before = _stats(admin)
            t0 = time.perf_counter()
            first = await syncer.run()
            after = _stats(admin)
            routes = admin.get("/stats").json()["by_route"]
            out["crawl_by_route"] = {k: v - before_routes.get(k, 0) for k, v in routes.items()
                                     if v - before_routes.get(k, 0) and not k.startswith("admin.")}
            out["delta_pages"] = first.pages
            out.update(crawl_s=time.perf_counter() - t0, crawl_requests=after[0] - before[0],
                       crawl_ru=after[1] - before[1], tracked=first.tracked,
                       rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
            token = await asyncio.to_thread(auth.token, __import__("connectors.auth").auth.Resource.GRAPH)
            naive_args = (info["graph_url"], info["drive_id"], token.value, info["ca_path"])
            run_naive = size <= NAIVE_MAX_ITEMS
            if run_naive:
                # Side by side on the same tree: what a client without delta pays for its first look.
                t0 = time.perf_counter()
                out.update(naive_requests=await _naive_walk(*naive_args), naive_s=time.perf_counter() - t0)
            # Ten changes, then one incremental cycle.
            for i in range(10):
                admin.post("/seed", json={"generate": {"files": 1, "folders": 0, "depth": 1, "seed": 1000 + i,
                                                       "under": f"/bench-changes-{i}"}})
            before = _stats(admin)
            before_graph = _graph_requests(admin)
            inc = await syncer.run()
            out.update(inc_requests=_stats(admin)[0] - before[0], inc_changes=len(inc.changes),
                       inc_graph_requests=_graph_requests(admin) - before_graph)
        if run_naive:
            # Without a change feed, the only way to find the ten changes is to walk the tree again.
            out["naive_again_requests"] = await _naive_walk(*naive_args)
        # Client-side processing rate: parse + reconcile of the crawl's pages, without the network.
        out["client_items_per_s"] = first.items_seen / first.processing_seconds if first.processing_seconds else 0
        auth.close()
        admin.close()
        return out
    finally:
        tenant.stop()


def main(argv: list[str]) -> int:
    if argv and argv[0] == "latency":
        return latency_main(argv[1:])
    if argv and argv[0] == "storm":
        return storm_main(argv[1:])
    sizes = [int(a) for a in argv] or [1000, 10000]
    with tempfile.TemporaryDirectory() as tmp:
        rows = [asyncio.run(_one(size, Path(tmp))) for size in sizes]
    print("| items | first crawl: requests (delta pages) | RU | wall s | peak RSS MB | incremental after 10 changes: "
          "Graph requests / changes | naive children walk: requests | wall s | ratio, first crawl | "
          "ratio, crawl + one cycle | client items/s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        # Graph requests against Graph requests: the crawl's delta pages, not the one-off token and
        # OpenID discovery calls (the naive walk reuses a token fetched beforehand). "Crawl + one
        # cycle" adds what each side pays to find the ten changes: one delta request against a
        # second walk of the whole tree.
        if "naive_requests" in r:
            first = r["naive_requests"] / max(r["delta_pages"], 1)
            both = ((r["naive_requests"] + r["naive_again_requests"])
                    / max(r["delta_pages"] + r["inc_graph_requests"], 1))
            naive = f"{r['naive_requests']} | {r['naive_s']:.2f} | {first:.0f}× | {both:.0f}×"
        else:
            naive = "not run | — | — | —"
        print(f"| {r['items']} | {r['crawl_requests']} ({r['delta_pages']}) | {r['crawl_ru']} | {r['crawl_s']:.2f} | "
              f"{r['rss_mb']:.0f} | "
              f"{r['inc_graph_requests']} / {r['inc_changes']} | {naive} | {r['client_items_per_s']:,.0f} |")
    for r in rows:
        print(f"{r['items']} items: {r['delta_pages']} delta page(s); crawl requests by route {r['crawl_by_route']}")
    sys.stdout.flush()
    return 0


# ---------------------------------------------------------------------------------------------- latency
def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


async def _latency(n: int, work: Path) -> dict[str, Any]:
    from bot.notifications import SyncRequests
    from bot.receiver import Receiver, serve_receiver
    from bot.watching import Cycle, watch
    from tests.sdk import Tokens

    tenant = LocalTenantProcess(work / "tenant-latency")
    info = tenant.start()
    secret = "bench-latency-client-state"
    seen: dict[str, float] = {}
    cycles: list[Cycle] = []

    def on_cycle(cycle: Cycle) -> None:
        cycles.append(cycle)
        now = time.perf_counter()
        for change in cycle.result.changes if cycle.result else []:
            seen.setdefault(change.path, now)

    try:
        token = Tokens(info).graph("admin")  # another app: "a change made directly on the tenant"
        requests = SyncRequests()
        app = Receiver(requests, secret)
        async with serve_receiver(app) as port, httpx.AsyncClient(
                base_url=info["graph_url"] + f"/drives/{info['drive_id']}", verify=info["ca_path"],
                trust_env=False, timeout=30, headers={"Authorization": f"Bearer {token}"}) as editor:
            settings = Settings.load(env_file=None, tenant_file=Path(info["data_dir"]) / "tenant.json",
                                     store={"data_dir": str(work / "store-latency")},
                                     notifications={"url": f"http://127.0.0.1:{port}/notifications",
                                                    "client_state": secret})
            (await editor.post("/root/children", json={"name": "latency", "folder": {}})).raise_for_status()
            with Store.open(settings.store.url) as store:
                task = asyncio.ensure_future(watch(settings, store, requests=requests, on_cycle=on_cycle))
                while not cycles:
                    await asyncio.sleep(0.05)
                await asyncio.sleep(2.0)  # let the set-up's own notification land first
                latencies: list[float] = []
                for i in range(n):
                    path = f"/latency/change-{i:03d}.txt"
                    (await editor.put(f"/root:{path}:/content", content=f"change {i}".encode())).raise_for_status()
                    changed = time.perf_counter()
                    while path not in seen:
                        if time.perf_counter() - changed > 30:
                            raise RuntimeError(f"{path} not in the change log after 30 s")
                        await asyncio.sleep(0.01)
                    latencies.append(seen[path] - changed)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        notification_cycles = sum(1 for c in cycles if c.reason == "notification")
        return {"n": n, "latencies": latencies, "cycles": len(cycles), "notification_cycles": notification_cycles,
                "accepted": app.accepted}
    finally:
        tenant.stop()


def latency_main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 50
    with tempfile.TemporaryDirectory() as tmp:
        r = asyncio.run(_latency(n, Path(tmp)))
    values = r["latencies"]
    print("| changes (one at a time) | p50 s | p95 s | max s | mean s | notification-driven cycles | "
          "notifications accepted |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {r['n']} | {statistics.median(values):.2f} | {_percentile(values, 0.95):.2f} | {max(values):.2f} | "
          f"{statistics.fmean(values):.2f} | {r['notification_cycles']} | {r['accepted']} |")
    sys.stdout.flush()
    return 0


# ---------------------------------------------------------------------------------------------- storm
async def _storm(items: int, work: Path) -> dict[str, Any]:
    tenant = LocalTenantProcess(work / "tenant-storm", extra=["--ru-per-minute", "100000000"])
    info = tenant.start()
    try:
        admin = httpx.Client(base_url=info["admin_url"], verify=info["ca_path"], trust_env=False, timeout=300)
        folders = max(1, items // 10)
        generated = admin.post("/seed", json={"generate": {"files": items - folders, "folders": folders, "depth": 3,
                                                           "under": "/storm"}}).json()["generate"]
        settings = Settings.load(env_file=None, tenant_file=Path(info["data_dir"]) / "tenant.json",
                                 store={"data_dir": str(work / "store-storm")}, sync={"page_size": 100},
                                 http={"max_retries": 10})
        auth = Authenticator(settings)
        graph = build_graph_client(settings, auth)
        reader = GraphDeltaReader(graph, info["drive_id"], page_size=settings.sync.page_size)
        # 30 % of delta requests throttled: 15 % with Retry-After 1 s, 15 % of all (17.6 % of the rest) with 2 s.
        admin.post("/stats/reset").raise_for_status()
        admin.post("/faults", json={"rules": [
            {"kind": "429", "route": "graph.delta", "probability": 0.15, "retry_after": "1"},
            {"kind": "429", "route": "graph.delta", "probability": 0.1765, "retry_after": "2"}]}).raise_for_status()
        out: dict[str, Any] = {"items": generated["items"]}
        try:
            with Store.open(settings.store.url) as store:
                syncer = Syncer(store, reader, info["drive_id"], own_app_id=settings.auth.client_id)
                t0 = time.perf_counter()
                first = await syncer.run()
                out["crawl_s"] = time.perf_counter() - t0
                changed = admin.post("/seed", json={"generate": {"files": 40, "folders": 10, "depth": 1, "seed": 7,
                                                                 "under": "/storm-changes"}}).json()["generate"]
                out["inc_expected"] = changed["items"] + 1  # and the /storm-changes folder itself
                t0 = time.perf_counter()
                inc = await syncer.run()
                out["inc_s"] = time.perf_counter() - t0
                tracked = {i.path for i in store.items(info["drive_id"])}
        finally:
            admin.delete("/faults")
        stats = admin.get("/stats").json()
        delta_requests = stats["by_route"].get("graph.delta", 0)
        out.update(pages=first.pages + inc.pages, tracked_storm=sum(1 for p in tracked if p.startswith("/storm/")),
                   inc_changes=len(inc.changes), delta_requests=delta_requests,
                   throttled=int(stats["by_status"].get("429", 0)),
                   inside=int(stats["total_requests_inside_retry_after"]))
        auth.close()
        admin.close()
        return out
    finally:
        tenant.stop()


def storm_main(argv: list[str]) -> int:
    items = int(argv[0]) if argv else 3000
    with tempfile.TemporaryDirectory() as tmp:
        r = asyncio.run(_storm(items, Path(tmp)))
    print("| generated items | delta pages (crawl + incremental) | delta requests | 429 answers | share | "
          "requests inside Retry-After | tracked after crawl | incremental changes / expected | "
          "crawl s | incremental s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {r['items']} | {r['pages']} | {r['delta_requests']} | {r['throttled']} | "
          f"{r['throttled'] / max(r['delta_requests'], 1):.0%} | {r['inside']} | {r['tracked_storm']} | "
          f"{r['inc_changes']} / {r['inc_expected']} | {r['crawl_s']:.1f} | {r['inc_s']:.1f} |")
    sys.stdout.flush()
    return 0
