"""Shared fixtures: one local tenant per test session, and real SDK clients pointed at it.

The tenant runs as a subprocess (``python -m emulator``) on a free port with a fresh data
directory, seeded with the ``cartif`` scenario. Tests share it, so each test works under its
own names (``unique``). Clients come from ``tests.sdk``: msal, msgraph-sdk and
office365-rest-python-client configured only from ``tenant.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import sdk

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _clean_cartif_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the test, never from the developer's shell."""
    for key in list(os.environ):
        if key.startswith("CARTIF_"):
            monkeypatch.delenv(key, raising=False)


class LocalTenant:
    """A running local tenant subprocess and its connection file."""

    def __init__(self, data_dir: Path, *, seed: str | None = "cartif", extra: list[str] | None = None) -> None:
        self.data_dir = data_dir
        self.seed = seed
        self.extra = extra or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}

    def start(self, *, reset: bool = True, port: int = 0) -> dict[str, Any]:
        conn = self.data_dir / "tenant.json"
        if reset and conn.exists():
            conn.unlink()
        before = conn.stat().st_mtime_ns if conn.exists() else 0
        args = [sys.executable, "-m", "emulator", "--port", str(port), "--data-dir", str(self.data_dir),
                *(["--reset"] if reset else []), *(["--seed", self.seed] if self.seed else []), *self.extra]
        self.log = open(self.data_dir.parent / f"{self.data_dir.name}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"local tenant exited with {self.proc.returncode}; see {self.log.name}")
            if conn.exists() and conn.stat().st_mtime_ns != before:
                info = json.loads(conn.read_text())
                try:
                    r = httpx.get(info["admin_url"] + "/health", verify=info["ca_path"], trust_env=False, timeout=2)
                    if r.status_code < 500:
                        self.info = info
                        return info
                except httpx.HTTPError:
                    pass
            time.sleep(0.1)
        raise RuntimeError("local tenant did not start within 60 s")

    def stop(self, *, kill: bool = False) -> None:
        if self.proc is None:
            return
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
        self.log.close()


@pytest.fixture(scope="session")
def local_tenant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTenant]:
    tenant = LocalTenant(tmp_path_factory.mktemp("tenant") / "data")
    tenant.data_dir.mkdir(parents=True)
    tenant.start()
    yield tenant
    tenant.stop()


@pytest.fixture(scope="session")
def tenant_info(local_tenant: LocalTenant) -> dict[str, Any]:
    return local_tenant.info


@pytest.fixture(scope="session")
def tokens(tenant_info: dict[str, Any]) -> sdk.Tokens:
    return sdk.Tokens(tenant_info)


@pytest.fixture
def unique() -> str:
    return "t-" + uuid.uuid4().hex[:6]


@pytest.fixture(scope="session")
def admin(tenant_info: dict[str, Any]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=tenant_info["admin_url"], verify=tenant_info["ca_path"], trust_env=False,
                      timeout=60) as client:
        yield client


@pytest.fixture(scope="session")
def graph(tenant_info: dict[str, Any], tokens: sdk.Tokens) -> Any:
    return sdk.graph_client(tenant_info, tokens)


@pytest.fixture(scope="session")
async def graph_http(tenant_info: dict[str, Any], tokens: sdk.Tokens) -> AsyncIterator[httpx.AsyncClient]:
    async with sdk.graph_http(tenant_info, tokens) as client:
        yield client


@pytest.fixture(scope="session")
def sp(tenant_info: dict[str, Any], tokens: sdk.Tokens) -> Any:
    return sdk.sp_context(tenant_info, tokens)


@pytest.fixture(scope="session")
def sp_http(tenant_info: dict[str, Any], tokens: sdk.Tokens) -> Iterator[Any]:
    session = sdk.sp_http(tenant_info, tokens)
    yield session
    session.close()
