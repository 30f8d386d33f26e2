"""``python -m bench drift [N]``: how soon the service puts right a folder shared by hand.

The real service (``cartif-bot run`` as a child process, as systemd runs it) on a fresh seeded
local tenant with the shipped CARTIF structure (127 governed folders), change notifications on,
and its schedule set to an hour so that no scheduled cycle can do the work. After the start-up
cycle has built the structure, another app makes N hand-made sharing links, one at a time, on governed folders in turn
(organization links, view or edit, as a negotiator would share a folder with a colleague). Each is
timed from the end of the createLink request until the link is gone from the folder's
permissions, as seen through Graph by that other app. The service's subscription asks for
permission changes (``Prefer: includesecuritywebhooks``), so the share notifies it and a
notification-driven cycle removes the link.

Per correction: p50/p95/max latency, requests and resource units the bot's app spent (counted by
the tenant). The tenant's budget is raised for the whole run: the watcher polls the folder's
permissions every 50 ms (5 RU each), which SharePoint's 1,200 RU/minute would throttle; the bot's
own cost per correction is reported against that budget instead. The baseline is the schedule
alone, which is computed, not run: with the default ``schedule.interval_seconds`` (300) a share
waits half an interval on average and a whole one at worst. A measurement, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.sync import _percentile
from bot.service.child import ServiceChild, child_env
from config.settings import ScheduleSettings
from emulator.process import LocalTenantProcess

#: Governed folders of config/cartif.yaml shared in turn.
FOLDERS = ("Working groups/WG-TF/Submissions/KAZ", "Plenary", "Negotiating texts", "Chief Negotiators",
           "Working groups/WG-FW/Submissions/UZB")
RAISED_BUDGET = 100_000
#: SharePoint's per-app budget per minute (0–1,000 licences), to put the bot's cost in proportion.
PRODUCTION_BUDGET = 1200


def _bot_usage(admin: httpx.Client, app: str) -> tuple[int, int]:
    stats = admin.get("/stats").json()
    return int(stats["requests_by_app"].get(app, 0)), int(stats["resource_units_by_app"].get(app, 0))


def run(n: int, work: Path) -> dict[str, Any]:
    import socket

    from tests.sdk import Tokens

    tenant = LocalTenantProcess(work / "tenant")
    info = tenant.start()
    admin = httpx.Client(base_url=info["admin_url"], verify=info["ca_path"], trust_env=False, timeout=60)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = child_env(tenant.connection_file, work, api_token="bench-drift-token-" + "x" * 16, extra={
        "CARTIF_SERVICE__PORT": str(port),
        "CARTIF_NOTIFICATIONS__URL": f"http://127.0.0.1:{port}/notifications",
        "CARTIF_NOTIFICATIONS__CLIENT_STATE": "bench-drift-client-state",
        "CARTIF_SCHEDULE__INTERVAL_SECONDS": "3600",
    })
    service = ServiceChild(env, work, name="drift-service")
    try:
        admin.post("/throttle", json={"ru_per_minute": RAISED_BUDGET, "reset": True}).raise_for_status()
        service.start()
        service.wait_for(lambda: service.status()["last_cycles"], timeout=600, what="the start-up cycle")
        token = Tokens(info).graph("admin")  # another app: a negotiator's share, not the bot's
        latencies: list[float] = []
        usage: list[tuple[int, int]] = []
        with httpx.Client(base_url=f"{info['graph_url']}/drives/{info['drive_id']}", verify=info["ca_path"],
                          trust_env=False, timeout=30, headers={"authorization": f"Bearer {token}"}) as graph:
            for i in range(n):
                time.sleep(2.0)  # the previous correction's own notifications land and their cycle ends
                service.wait_for(lambda: service.status()["current"] is None, what="an idle service")
                folder = FOLDERS[i % len(FOLDERS)]
                before = _bot_usage(admin, info["client_id"])
                graph.post(f"/root:/{folder}:/createLink",
                           json={"type": "edit" if i % 2 else "view", "scope": "organization"}).raise_for_status()
                shared = time.perf_counter()

                def linked(path: str = folder) -> bool:
                    resp = graph.get(f"/root:/{path}:/permissions")
                    resp.raise_for_status()
                    granted = resp.json()["value"]
                    return any("link" in p for p in granted)
                while linked():
                    if time.perf_counter() - shared > 60:
                        raise RuntimeError(f"the link on {folder} was not removed within 60 s")
                    time.sleep(0.05)
                latencies.append(time.perf_counter() - shared)
                service.wait_for(lambda: service.status()["current"] is None, what="the correcting cycle's end")
                after = _bot_usage(admin, info["client_id"])
                usage.append((after[0] - before[0], after[1] - before[1]))
        with service.client() as c:
            runs = c.get("/api/runs", params={"limit": 200}).json()["runs"]
        after_start = [r for r in runs if r["reason"] != "start"]
        applied = [r for r in after_start if any(st["name"] == "permissions" and st["counts"].get("applied")
                                                 for st in r["steps"])]
        return {"n": n, "latencies": latencies, "usage": usage, "interval": ScheduleSettings().interval_seconds,
                "reasons": sorted({r["reason"] for r in after_start}), "cycles": len(after_start),
                "correcting": len(applied)}
    finally:
        service.stop()
        admin.close()
        tenant.stop()


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 20
    with tempfile.TemporaryDirectory() as tmp:
        r = run(n, Path(tmp))
    values = r["latencies"]
    requests = [u[0] for u in r["usage"]]
    units = [u[1] for u in r["usage"]]
    print("| hand-made shares (one at a time) | p50 s | p95 s | max s | bot requests per correction (median) | "
          "bot RU per correction (median) | % of 1,200 RU/min | schedule alone: mean / worst s |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {r['n']} | {statistics.median(values):.2f} | {_percentile(values, 0.95):.2f} | {max(values):.2f} | "
          f"{statistics.median(requests):.0f} | {statistics.median(units):.0f} | "
          f"{100 * statistics.median(units) / PRODUCTION_BUDGET:.1f} % | {r['interval'] / 2:.0f} / {r['interval']} |")
    print(f"{r['cycles']} cycles after the start-up one ({', '.join(r['reasons'])}), {r['correcting']} of them "
          f"applied a correction; the others were started by the notifications of the bot's own removals")
    sys.stdout.flush()
    return 0
