"""Run the local tenant: bind, create keys and state, seed, write ``DIR/tenant.json``, serve HTTPS.

``cartif-bot emulator serve`` and ``python -m emulator`` both land here; the test suite starts
it as a subprocess per session. The socket is bound before anything is written, so a port of 0
picks a free one and ``tenant.json`` names the real port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
from pathlib import Path

import uvicorn

from emulator.app import Tenant, TenantConfig
from emulator.seed import connection_file, seed_cartif

SCENARIOS = {"cartif": seed_cartif}
#: What ``--reset`` removes from the data directory (never anything else found there).
_OWN_FILES = ("tenant.sqlite3", "tenant.sqlite3-wal", "tenant.sqlite3-shm", "tenant.json", "certs")


def reset_data_dir(data_dir: Path) -> None:
    for name in _OWN_FILES:
        target = data_dir / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(256)
    sock.set_inheritable(True)
    return sock


def prepare(port: int, data_dir: Path, *, reset: bool, seed: str | None, ru_per_minute: int = 1200,
            host: str = "127.0.0.1") -> tuple[Tenant, socket.socket]:
    """Everything but serving: returns the tenant and its listening socket."""
    if seed is not None and seed not in SCENARIOS:
        raise SystemExit(f"--seed: unknown scenario {seed!r}; known: {', '.join(SCENARIOS)}")
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    if reset:
        reset_data_dir(data_dir)
    sock = bind(host, port)
    actual_port = sock.getsockname()[1]
    tenant = Tenant(TenantConfig(data_dir=data_dir, host="localhost", port=actual_port,
                                 ru_per_minute=ru_per_minute))
    if seed is not None:
        SCENARIOS[seed](tenant)
    elif not tenant.tenant_id:
        import uuid

        tenant.state.set_meta("tenant_id", str(uuid.uuid4()))
    write_connection_file(tenant)
    return tenant, sock


def write_connection_file(tenant: Tenant) -> Path:
    path = tenant.config.data_dir / "tenant.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(connection_file(tenant), indent=2) + "\n")
    os.replace(tmp, path)
    return path


async def serve_async(tenant: Tenant, sock: socket.socket, *, log_level: str = "warning") -> None:
    identity = tenant.identity
    config = uvicorn.Config(tenant, ssl_certfile=str(identity.server_cert_path),
                            ssl_keyfile=str(identity.server_key_path), log_level=log_level, lifespan="on",
                            access_log=False, timeout_keep_alive=30, http="h11",
                            timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    await server.serve(sockets=[sock])


def serve(port: int, data_dir: Path, *, reset: bool = False, seed: str | None = None,
          host: str = "127.0.0.1", ru_per_minute: int = 1200, log_level: str = "warning") -> None:
    """Run the tenant in the foreground until SIGINT/SIGTERM."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tenant, sock = prepare(port, data_dir, reset=reset, seed=seed, ru_per_minute=ru_per_minute, host=host)
    print(f"local tenant: {tenant.base_url}  (connection file: {tenant.config.data_dir / 'tenant.json'})",
          flush=True)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_async(tenant, sock, log_level=log_level))
