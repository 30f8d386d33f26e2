"""The service act of ``cartif-bot demo``: run ``cartif-bot run`` against a local tenant and show it.

Where it sits: ``bot.demo`` calls ``show_service`` after the scripted day (the lead wires it); it
starts the real service as a child process (``python -m bot run``), waits for the start-up
cycle, lets the secretariat's app trigger a manual sync with its own Entra ID token (app role
``Sync.Trigger``), follows the run, reads ``/api/status`` and ``/metrics``, and stops the service
with SIGTERM as systemd would. Every value comes from the tenant's connection file.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bot.service.child import ServiceChild, child_env, entra_token

__all__ = ["show_service"]


def _steps(run: dict[str, Any]) -> str:
    return "; ".join(f"{s['name']} {s['status']}"
                     + (f" ({', '.join(f'{k} {v}' for k, v in s['counts'].items() if v)})" if s["counts"] else "")
                     for s in run["steps"])


def show_service(tenant_file: Path, workdir: Path, say: Callable[[str], None],
                 extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run the service against the tenant of ``tenant_file``, show triggers, status and metrics; stop it."""
    info: dict[str, Any] = json.loads(tenant_file.read_text())
    api_token = secrets.token_urlsafe(24)
    child = ServiceChild(child_env(tenant_file, workdir, api_token=api_token, extra=extra_env), workdir)
    url = child.start().url
    say(f"Service     cartif-bot run on {url}  (logs: {child.log_path})")
    summary: dict[str, Any] = {"url": url}
    try:
        with child.client() as api:
            first = child.wait_for(lambda: api.get("/api/status").json()["last_cycles"], 600,
                                   "the start-up cycle")[-1]
            first_run = api.get(f"/api/runs/{first['id']}").json()
            say(f"            start-up cycle {first['id']}: {first['status']} — {_steps(first_run)}")
            anonymous = httpx.post(f"{url}/api/sync", trust_env=False, timeout=30)
            say(f"            POST /api/sync without a token → {anonymous.status_code}")
            with child.client(token=entra_token(info)) as secretariat:
                answer = secretariat.post("/api/sync")
            run_id = answer.json()["run_id"]
            say(f"            the secretariat's app triggers a sync with its Entra ID token (Sync.Trigger) → "
                f"{answer.status_code}, run {run_id}")
            run = child.wait_run(run_id, 600)
            say(f"            run {run_id}: {run['status']} — {_steps(run)}")
            status = api.get("/api/status").json()
            say(f"            /api/status: {status['role']}, {len(status['last_cycles'])} cycle(s), "
                f"{len(status['drift_findings'])} drift finding(s) last time, outbox {status['outbox_depth']}")
            metrics = api.get("/metrics").text
            shown = [line for line in metrics.splitlines()
                     if line.startswith(("cartif_cycles_total{", "cartif_http_requests_total{", "cartif_leader "))]
            for line in shown[:8]:
                say(f"            {line}")
            summary.update(first=first_run, manual=run, status=status)
    finally:
        code = child.stop()
        say(f"            SIGTERM → exit {code} (the step in flight finishes, nothing half-applied)")
        summary["exit"] = code
    return summary
