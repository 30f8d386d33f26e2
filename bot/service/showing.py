"""The service act of ``cartif-bot demo``: run ``cartif-bot run`` against a local tenant and show it.

Where it sits: ``bot.demo`` calls ``show_service`` after the scripted day (the lead wires it); it
starts the real service as a child process (``python -m bot run``), waits for the start-up
cycle, lets the secretariat's app trigger a manual sync with its own Entra ID token (app role
``Sync.Trigger``), follows the run, reads ``/api/status`` and ``/metrics``, and stops the service
with SIGTERM as systemd would. Every value comes from the tenant's connection file.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

__all__ = ["ServiceChild", "show_service"]


class ServiceChild:
    """``cartif-bot run`` as a child process: started, found (its URL), stopped with SIGTERM."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = env
        self.workdir = workdir
        self.log_path = workdir / "service.log"
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self, timeout: float = 60) -> str:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "bot", "run"], env=self.env, cwd=self.workdir,
                                         stdout=subprocess.PIPE, stderr=log, text=True)
        lines: queue.Queue[str] = queue.Queue()
        stdout = self.proc.stdout
        assert stdout is not None
        def pump() -> None:
            for line in stdout:
                lines.put(line)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"`cartif-bot run` exited {self.proc.returncode}; see {self.log_path}") from None
                continue
            if "listening on " in line:
                self.url = line.strip().rsplit(" ", 1)[-1]
                return self.url
        self.stop()
        raise RuntimeError(f"`cartif-bot run` did not start within {timeout:.0f} s; see {self.log_path}")

    def stop(self, timeout: float = 120) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)


def _entra_token(info: dict[str, Any]) -> str:
    """The secretariat app's client-credentials token for the bot's API (carries Sync.Trigger)."""
    import msal
    import requests

    session = requests.Session()
    session.trust_env = False
    session.verify = info["ca_path"]
    app = msal.ConfidentialClientApplication(info["secretariat_client_id"], authority=info["authority"],
                                             client_credential=info["secretariat_client_secret"],
                                             instance_discovery=False, http_client=session)
    result = app.acquire_token_for_client(scopes=[f"{info['api_app_id_uri']}/.default"])
    if "access_token" not in result:
        raise RuntimeError(f"the local tenant issued no token: {result.get('error_description')}")
    return str(result["access_token"])


def _wait(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


def _steps(run: dict[str, Any]) -> str:
    return "; ".join(f"{s['name']} {s['status']}"
                     + (f" ({', '.join(f'{k} {v}' for k, v in s['counts'].items() if v)})" if s["counts"] else "")
                     for s in run["steps"])


def show_service(tenant_file: Path, workdir: Path, say: Callable[[str], None],
                 extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run the service against the tenant of ``tenant_file``, show triggers, status and metrics; stop it."""
    info: dict[str, Any] = json.loads(tenant_file.read_text())
    api_token = secrets.token_urlsafe(24)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARTIF_")}
    env.update({"CARTIF_TENANT_FILE": str(tenant_file), "CARTIF_STORE__URL": f"sqlite:///{workdir / 'store.sqlite3'}",
                "CARTIF_SERVICE__PORT": "0", "CARTIF_SERVICE__API_TOKEN": api_token,
                "CARTIF_SERVICE__LOG_FORMAT": "json", **(extra_env or {})})
    child = ServiceChild(env, workdir)
    url = child.start()
    say(f"Service     cartif-bot run on {url}  (logs: {child.log_path})")
    summary: dict[str, Any] = {"url": url}
    try:
        with httpx.Client(base_url=url, trust_env=False, timeout=30,
                          headers={"authorization": f"Bearer {api_token}"}) as api:
            first = _wait(lambda: api.get("/api/status").json()["last_cycles"], 600, "the start-up cycle")[-1]
            first_run = api.get(f"/api/runs/{first['id']}").json()
            say(f"            start-up cycle {first['id']}: {first['status']} — {_steps(first_run)}")
            anonymous = httpx.post(f"{url}/api/sync", trust_env=False, timeout=30)
            say(f"            POST /api/sync without a token → {anonymous.status_code}")
            token = _entra_token(info)
            answer = httpx.post(f"{url}/api/sync", headers={"authorization": f"Bearer {token}"}, trust_env=False,
                                timeout=30)
            run_id = answer.json()["run_id"]
            say(f"            the secretariat's app triggers a sync with its Entra ID token (Sync.Trigger) → "
                f"{answer.status_code}, run {run_id}")
            run = _wait(lambda: (r := api.get(f"/api/runs/{run_id}").json())["done"] and r, 600, "the manual run")
            say(f"            run {run_id}: {run['status']} — {_steps(run)}")
            status = api.get("/api/status").json()
            say(f"            /api/status: {status['role']}, {len(status['last_cycles'])} cycle(s), "
                f"{len(status['drift_findings'])} drift finding(s) last time, outbox {status['outbox_depth']}")
            metrics = api.get("/metrics").text
            shown = [line for line in metrics.splitlines()
                     if line.startswith(("cartif_cycles_total{", "cartif_graph_requests_total{", "cartif_leader "))]
            for line in shown[:8]:
                say(f"            {line}")
            summary.update(first=first_run, manual=run, status=status)
    finally:
        code = child.stop()
        say(f"            SIGTERM → exit {code} (the step in flight finishes, nothing half-applied)")
        summary["exit"] = code
    return summary
