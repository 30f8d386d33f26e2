"""`cartif-bot run` as a child process for the service tests: start, find its URL, signal, read its logs."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

API_TOKEN = "static-api-token-" + "x" * 16


class ServiceProcess:
    def __init__(self, tenant_file: Path, workdir: Path, *, store_url: str | None = None,
                 env: dict[str, str] | None = None, name: str = "service") -> None:
        self.workdir = workdir
        self.log_path = workdir / f"{name}.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CARTIF_")}
        self.env.update({
            "CARTIF_TENANT_FILE": str(tenant_file),
            "CARTIF_STORE__URL": store_url or f"sqlite:///{workdir / 'store.sqlite3'}",
            "CARTIF_SERVICE__PORT": "0",
            "CARTIF_SERVICE__API_TOKEN": API_TOKEN,
            "CARTIF_SERVICE__LOG_FORMAT": "json",
            "CARTIF_SERVICE__LOG_LEVEL": "DEBUG",
            "CARTIF_SCHEDULE__INTERVAL_SECONDS": "3600",
            **(env or {}),
        })
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self, timeout: float = 60) -> ServiceProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("a")
        self.proc = subprocess.Popen([sys.executable, "-m", "bot", "run"], env=self.env, cwd=self.workdir,
                                     stdout=subprocess.PIPE, stderr=log, text=True)
        lines: queue.Queue[str] = queue.Queue()
        stdout = self.proc.stdout
        assert stdout is not None
        threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"`cartif-bot run` exited {self.proc.returncode}: {self.logs_text()[-2000:]}") from None
                continue
            if "listening on " in line:
                self.url = line.strip().rsplit(" ", 1)[-1]
                return self
        raise RuntimeError("`cartif-bot run` did not start: " + self.logs_text()[-2000:])

    def client(self, token: str | None = API_TOKEN) -> httpx.Client:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, trust_env=False)

    def wait_run(self, run_id: str, timeout: float = 120) -> dict[str, Any]:
        with self.client() as c:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                run: dict[str, Any] = c.get(f"/api/runs/{run_id}").json()
                if run.get("done"):
                    return run
                time.sleep(0.1)
        raise AssertionError(f"run {run_id} did not finish")

    def wait_for(self, predicate: Any, timeout: float = 120, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; log tail: {self.logs_text()[-1500:]}")

    def status(self) -> dict[str, Any]:
        with self.client() as c:
            return dict(c.get("/api/status").json())

    def signal(self, sig: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = 120) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def logs_text(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def log_records(self) -> list[dict[str, Any]]:
        out = []
        for line in self.logs_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out
