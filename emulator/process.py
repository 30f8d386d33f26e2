"""Run the local tenant as a child process (the demo, the test suite and benchmarks use this).

A child process, rather than a thread, so tests can kill and restart it like a real service and
its event loop never competes with the client's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import httpx


class LocalTenantProcess:
    """A local tenant subprocess on a free port, and its connection file (``tenant.json``)."""

    def __init__(self, data_dir: Path, *, seed: str | None = "cartif", extra: list[str] | None = None) -> None:
        self.data_dir = data_dir
        self.seed = seed
        self.extra = extra or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}
        self._log: IO[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    @property
    def connection_file(self) -> Path:
        return self.data_dir / "tenant.json"

    def start(self, *, reset: bool = True, port: int = 0, timeout: float = 60) -> dict[str, Any]:
        """Start (or restart, keeping state when ``reset`` is False) and wait until it answers."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conn = self.connection_file
        if reset and conn.exists():
            conn.unlink()
        before = conn.stat().st_mtime_ns if conn.exists() else 0
        args = [sys.executable, "-m", "emulator", "--port", str(port), "--data-dir", str(self.data_dir),
                *(["--reset"] if reset else []), *(["--seed", self.seed] if self.seed else []), *self.extra]
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the local tenant exited with {self.proc.returncode}; see {self.log_path}")
            if conn.exists() and conn.stat().st_mtime_ns != before:
                info: dict[str, Any] = json.loads(conn.read_text())
                try:
                    r = httpx.get(info["admin_url"] + "/health", verify=info["ca_path"], trust_env=False, timeout=2)
                    if r.status_code == 200:
                        self.info = info
                        return info
                except httpx.HTTPError:
                    pass
            time.sleep(0.1)
        self.stop(kill=True)
        raise RuntimeError(f"the local tenant did not answer within {timeout:.0f} s; see {self.log_path}")

    def stop(self, *, kill: bool = False) -> None:
        if self.proc is not None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> LocalTenantProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
