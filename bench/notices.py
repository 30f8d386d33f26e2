"""``python -m bench notices [N]``: a change on the site → its card stored by the tenant's Teams webhook.

On a fresh local tenant (CARTIF seeded), N files are uploaded one at a time into the Secretariat
folder by another app (a person editing), and the time until the card naming the file is stored
by the Secretariat channel's Workflows webhook is measured, in two modes:

* ``notifications``: the production path of ``cartif-bot watch`` — Graph change notification to
  the bot's receiver (bot.receiver), one delta cycle per burst (bot.watching), then a drain of
  the notices outbox (bot.notices) triggered by that cycle, with the debounce window set to 0;
* ``direct``: the bot's own processing only — right after the upload, one sync cycle and one
  drain, no notification wait (what a manual ``cartif-bot sync && cartif-bot notices send`` costs).

It reports p50/p95/max latency, and per notice: the bot's requests to the tenant (delta pages,
tokens, subscription calls) and the webhook POSTs. The tenant's flow-run delay (50 ms, like a
real Workflows run taking its time) is included. Measurements, not assertions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from bot.notices import NoticeConfig, Router, drain
from bot.notifications import SyncRequests
from bot.receiver import Receiver, serve_receiver
from bot.store import Store
from bot.syncing import sync_once
from bot.watching import Cycle, watch
from config.settings import Settings
from config.structure import load_structure
from connectors.teams import build_workflows_notifier
from emulator.process import LocalTenantProcess

SECRET = "bench-notices-client-state"


def _routes(admin: httpx.Client) -> Counter[str]:
    by_route = admin.get("/stats").json()["by_route"]
    return Counter({k: int(v) for k, v in by_route.items() if not k.startswith("admin")})


def _editor(info: dict[str, Any]) -> httpx.Client:
    from tests.sdk import Tokens  # the tenant-admin app stands for a person editing files

    token = Tokens(info).graph("admin")
    return httpx.Client(base_url=info["graph_url"] + f"/drives/{info['drive_id']}", verify=info["ca_path"],
                        trust_env=False, timeout=30, headers={"Authorization": f"Bearer {token}"})


async def _stored(admin: httpx.Client, name: str, limit: float = 30.0) -> float:
    """Poll the channel until a posted card names ``name``; returns the time it was seen."""
    deadline = time.perf_counter() + limit
    while time.perf_counter() < deadline:
        for message in admin.get("/teams/Secretariat").json()["messages"]:
            if name in json.dumps(message["payload"], ensure_ascii=False):
                return time.perf_counter()
        await asyncio.sleep(0.01)
    raise TimeoutError(f"no card for {name} within {limit} s")


async def _run(mode: str, n: int, work: Path) -> dict[str, Any]:
    tenant = LocalTenantProcess(work / f"tenant-{mode}", extra=["--ru-per-minute", "100000000"])
    info = tenant.start()
    admin = httpx.Client(base_url=info["admin_url"], verify=info["ca_path"], trust_env=False, timeout=60)
    editor = _editor(info)
    router = Router(load_structure())
    latencies: list[float] = []
    try:
        editor.put("/root:/Secretariat/.keep:/content", content=b"").raise_for_status()
        requests = SyncRequests()
        app = Receiver(requests, SECRET)
        async with serve_receiver(app) as port:
            notifications = {"url": f"http://127.0.0.1:{port}/notifications", "client_state": SECRET}
            settings = Settings.load(env_file=None, tenant_file=Path(info["data_dir"]) / "tenant.json",
                                     store={"data_dir": str(work / f"store-{mode}")}, teams={"debounce_seconds": 0},
                                     notifications=notifications)
            config = NoticeConfig.from_settings(settings)
            notifier = build_workflows_notifier(settings)
            with Store.open(settings.store.url) as store:
                wake = asyncio.Event()
                cycles: list[Cycle] = []

                def on_cycle(cycle: Cycle) -> None:
                    cycles.append(cycle)
                    wake.set()

                async def drainer() -> None:
                    while True:
                        await wake.wait()
                        wake.clear()
                        await drain(store, notifier, router, config)

                tasks: list[asyncio.Task[None]] = []
                if mode == "notifications":
                    tasks = [asyncio.create_task(watch(settings, store, requests=requests, on_cycle=on_cycle)),
                             asyncio.create_task(drainer())]
                    while not cycles:
                        await asyncio.sleep(0.05)
                    await asyncio.sleep(1.5)  # the set-up upload's notification lands first
                else:
                    await sync_once(settings)  # the baseline
                before = _routes(admin)
                posts_before = notifier.posts
                for i in range(n):
                    name = f"bench-{mode}-{i:03d}.docx"
                    started = time.perf_counter()
                    editor.put(f"/root:/Secretariat/{name}:/content", content=b"x" * 1024).raise_for_status()
                    if mode == "direct":
                        await sync_once(settings)
                        await drain(store, notifier, router, config)
                    latencies.append(await _stored(admin, name) - started)
                    await asyncio.sleep(0.3)
                after = _routes(admin)
                posts = notifier.posts - posts_before
                for task in tasks:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            await notifier.aclose()
        used = after - before
        uploads = sum(v for k, v in used.items() if "content" in k.lower() and k != "teams.webhook")
        bot_requests = sum(used.values()) - uploads - used.get("teams.webhook", 0)
        ordered = sorted(latencies)
        return {"mode": mode, "n": n, "p50": statistics.median(ordered),
                "p95": ordered[max(0, round(0.95 * len(ordered)) - 1)], "max": ordered[-1],
                "bot_requests_per_notice": bot_requests / n, "webhook_posts_per_notice": posts / n,
                "routes": dict(used)}
    finally:
        editor.close()
        admin.close()
        tenant.stop()


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 20
    with tempfile.TemporaryDirectory() as tmp:
        rows = [asyncio.run(_run(mode, n, Path(tmp))) for mode in ("notifications", "direct")]
    print("| path | notices | p50 s | p95 s | max s | bot requests / notice | webhook POSTs / notice |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['n']} | {r['p50']:.2f} | {r['p95']:.2f} | {r['max']:.2f} | "
              f"{r['bot_requests_per_notice']:.1f} | {r['webhook_posts_per_notice']:.2f} |")
    for r in rows:
        print(f"{r['mode']}: requests by route during the run: {r['routes']}", file=sys.stderr)
    sys.stdout.flush()
    return 0
