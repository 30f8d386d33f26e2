"""``cartif-bot run`` as a child process: start it, wait until it listens, talk to it, stop it.

Where it sits: outside the cycle, beside it. The demo (``bot.demo``, ``bot.service.showing``) and
the service tests (``tests/service_process.py``) run the real service the way systemd does — a
separate process configured only through ``CARTIF_*`` variables (``child_env``) — and all need the
same few things: start it and wait for its ``listening on URL`` line, call its API with a bearer
token, follow a run to its end, signal, stop or kill it, read its JSON logs. ``entra_token`` gets
the secretariat app's Entra ID token (app role ``Sync.Trigger``) from the local tenant's
connection file, as a caller of ``POST /api/sync`` outside the service would.

Failures raise ``RuntimeError`` with a message from ``describe_failure`` (the log file's path);
the tests override that one method to quote the log's tail instead.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import EllipsisType
from typing import Any, Self

import httpx

__all__ = ["ServiceChild", "child_env", "entra_token"]

#: How often the waits ask the service again: often enough that a test does not idle, rare enough
#: that a long wait (the demo's first cycle, minutes) costs the service nothing noticeable.
POLL_SECONDS = 0.1


def child_env(tenant_file: Path, workdir: Path, *, api_token: str, store_url: str | None = None,
              extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a child service on ``tenant_file``'s tenant.

    This process's environment without any ``CARTIF_*`` variable (the child is configured here,
    never by the caller's shell), plus: a SQLite store in ``workdir`` unless ``store_url`` names
    another, a free port (the child prints it), the static API token ``api_token``, JSON logs (so
    ``ServiceChild.log_records`` can read them), and ``extra`` last, winning over all of those.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARTIF_")}
    env.update({
        "CARTIF_TENANT_FILE": str(tenant_file),
        "CARTIF_STORE__URL": store_url or f"sqlite:///{workdir / 'store.sqlite3'}",
        "CARTIF_SERVICE__PORT": "0",
        "CARTIF_SERVICE__API_TOKEN": api_token,
        "CARTIF_SERVICE__LOG_FORMAT": "json",
        **(extra or {}),
    })
    return env


class ServiceChild:
    """One ``cartif-bot run`` child process, working in ``workdir``, logging to ``workdir/<name>.log``.

    ``start`` returns once the child prints the URL it listens on (``url``); ``client`` talks to
    that URL with the child's own static API token (``CARTIF_SERVICE__API_TOKEN`` of ``env``) unless
    told otherwise; ``stop`` ends it as systemd does (SIGTERM, then SIGKILL after ``timeout``).
    """

    def __init__(self, env: dict[str, str], workdir: Path, *, name: str = "service") -> None:
        self.env = env
        self.workdir = workdir
        self.log_path = workdir / f"{name}.log"
        self.api_token = env.get("CARTIF_SERVICE__API_TOKEN")
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def describe_failure(self, what: str) -> str:
        """The message of every failure: ``what`` went wrong and where the child's log is."""
        return f"{what}; see {self.log_path}"

    def start(self, timeout: float = 60) -> Self:
        """Start the child and wait (at most ``timeout`` seconds) until it says where it listens."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "bot", "run"], env=self.env, cwd=self.workdir,
                                         stdout=subprocess.PIPE, stderr=log, text=True)
        lines: queue.Queue[str] = queue.Queue()
        stdout = self.proc.stdout
        assert stdout is not None

        def pump() -> None:
            # Read stdout for the child's whole life, so a full pipe never blocks its prints.
            for line in stdout:
                lines.put(line)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise RuntimeError(self.describe_failure(f"`cartif-bot run` exited {self.proc.returncode}")
                                       ) from None
                continue
            if "listening on " in line:
                self.url = line.strip().rsplit(" ", 1)[-1]
                return self
        self.stop()
        raise RuntimeError(self.describe_failure(f"`cartif-bot run` did not start within {timeout:.0f} s"))

    def client(self, token: str | EllipsisType | None = ...) -> httpx.Client:
        """An HTTP client for the child's API: with its static API token, with ``token``, or anonymous (None)."""
        bearer = self.api_token if isinstance(token, EllipsisType) else token
        headers = {"authorization": f"Bearer {bearer}"} if bearer else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, trust_env=False)

    def status(self) -> dict[str, Any]:
        """``GET /api/status``."""
        with self.client() as c:
            return dict(c.get("/api/status").json())

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 120, what: str = "") -> Any:
        """The first true value of ``predicate()``, asked every ``POLL_SECONDS`` for ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(POLL_SECONDS)
        raise RuntimeError(self.describe_failure(f"timed out after {timeout:.0f} s waiting for {what}"))

    def wait_run(self, run_id: str, timeout: float = 120) -> dict[str, Any]:
        """``GET /api/runs/{run_id}`` once the run is done (succeeded, failed or interrupted)."""
        with self.client() as c:
            def done() -> dict[str, Any] | None:
                run: dict[str, Any] = c.get(f"/api/runs/{run_id}").json()
                return run if run.get("done") else None

            result: dict[str, Any] = self.wait_for(done, timeout, f"run {run_id} to finish")
            return result

    def signal(self, sig: int = signal.SIGTERM) -> None:
        assert self.proc is not None, "start the child first"
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = 120) -> int:
        """The child's exit status, once it has exited by itself (after ``signal``, say)."""
        assert self.proc is not None, "start the child first"
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout: float = 120) -> int:
        """SIGTERM (the step in flight finishes), SIGKILL after ``timeout`` seconds; the exit status."""
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

    def kill(self) -> None:
        """SIGKILL: no clean-up at all, as when the machine dies."""
        assert self.proc is not None, "start the child first"
        self.proc.kill()
        self.proc.wait()

    def logs_text(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON log lines as records; any other line (a traceback, say) is left out."""
        out = []
        for line in self.logs_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out


def entra_token(info: Mapping[str, Any]) -> str:
    """The secretariat app's client-credentials token for the bot's API (it carries ``Sync.Trigger``).

    ``info`` is the local tenant's connection file (``tenant.json``): the app's id and secret, the
    authority, the API's application ID URI and the tenant's CA certificate all come from there.
    """
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
