"""``cartif-bot run``: the long-running service — scheduler, cycle runner, HTTP server, leadership.

Where it sits: ``bot.cli`` calls ``run_service(settings)``; everything runs in one asyncio event
loop::

    uvicorn      the ASGI app of bot.service.api (notifications, /api, health, metrics)
    runner       bot.service.running.CycleRunner: scheduled and triggered cycles, one at a time
    leadership   a standby polls for the lock; the leader checks it before every cycle
    notifications  SyncRequests from the receiver → one "notification" trigger per burst

SIGTERM or SIGINT: readiness turns 503, the step in flight finishes, the rest of the cycle is
skipped, the HTTP server stops, the lock is released and the process exits 0. The service
installs its own signal handlers (uvicorn's are turned off) so that uvicorn does not re-raise
the signal after a clean stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from typing import Any

import uvicorn

from bot.errors import UserError
from bot.notifications import SyncRequests
from bot.receiver import Receiver
from bot.service.api import build_app
from bot.service.authn import TriggerAuth
from bot.service.history import RunHistory
from bot.service.leading import leadership_for
from bot.service.logs import configure_logging
from bot.service.metrics import ServiceMetrics
from bot.service.running import CycleRunner, Run
from bot.service.scheduling import Schedule
from bot.service.steps import CycleStep, build_steps
from bot.store import Store
from config.settings import Settings

__all__ = ["run_service", "secrets_of"]

log = logging.getLogger("bot.service")

#: After the first notification of a burst, wait this long so the rest joins the same trigger.
SETTLE_SECONDS = 0.3


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the service stops it itself, after the cycle."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        return


def secrets_of(settings: Settings) -> list[str]:
    """Every configured secret value, for log redaction."""
    values: list[str] = []
    for secret in (settings.auth.client_secret, settings.auth.certificate_passphrase, settings.service.api_token,
                   settings.notifications.client_state, *settings.teams.webhooks.values()):
        if secret is not None:
            values.append(secret.get_secret_value())
    url = settings.store.url
    if "@" in url and ":" in url.split("//", 1)[-1].split("@", 1)[0]:
        values.append(url.split("//", 1)[-1].split("@", 1)[0].split(":", 1)[1])
    return values


async def run_service(settings: Settings, *, steps: list[CycleStep] | None = None) -> int:
    """Run until SIGTERM/SIGINT; the exit status (0 after a clean stop)."""
    service = settings.service
    configure_logging(service.log_format, service.log_level, secrets_of(settings))
    schedule = Schedule.from_settings(settings.schedule)  # a bad cron fails here, before anything starts
    leadership = leadership_for(settings)
    store = await asyncio.to_thread(Store.open, settings.store.url)
    metrics = ServiceMetrics()
    metrics.install()
    leading = {"leader": False}
    if not await asyncio.to_thread(leadership.try_acquire):
        if leadership.kind == "file":
            store.close()
            raise UserError(f"another `cartif-bot run` already uses this store ({settings.store.url}); SQLite "
                            "allows one instance — stop it, or use PostgreSQL (CARTIF_STORE__URL) for replicas")
        log.info("standby: another replica holds the leader lock")
    else:
        leading["leader"] = True
        log.info("leader: holding the %s lock", leadership.kind)
    metrics.leader.set(1 if leading["leader"] else 0)

    def finished(run: Run) -> None:
        metrics.cycle_finished(run, time.time())

    requests = SyncRequests()
    runner = CycleRunner(settings, store, steps if steps is not None else build_steps(settings, requests=requests),
                         schedule=schedule, is_leader=lambda: leading["leader"], on_finished=finished,
                         keep=service.keep_runs, history=RunHistory(store, service.run_history_days))
    receiver = None
    url, secret = settings.notifications.url, settings.notifications.client_state
    if url and secret is not None:
        from urllib.parse import urlsplit

        receiver = Receiver(requests, secret.get_secret_value(), path=urlsplit(url).path or "/notifications")
    auth = TriggerAuth(settings)
    if service.api_token is None and not service.app_id_uri:
        log.warning("POST /api/sync accepts no credential: set CARTIF_SERVICE__API_TOKEN or "
                    "CARTIF_SERVICE__APP_ID_URI to allow manual triggers")
    app = build_app(runner, auth, metrics, store, receiver=receiver,
                    role=lambda: "leader" if leading["leader"] else "standby",
                    status_extra=lambda: {"leadership": leadership.kind})
    config = uvicorn.Config(app, host=service.host, port=service.port, log_level="warning", lifespan="off",
                            access_log=False, log_config=None)
    server = _Server(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, runner.stop)

    server_task = asyncio.create_task(server.serve(), name="http")
    while not server.started:
        if server_task.done():
            server_task.result()
            raise UserError(f"CARTIF_SERVICE__PORT: the HTTP server did not start on {service.host}:{service.port}")
        await asyncio.sleep(0.02)
    port = next((int(s.getsockname()[1]) for srv in server.servers for s in srv.sockets), service.port)
    log.info("listening on http://%s:%d (%s; %s)", service.host, port, schedule.describe(),
             "leader" if leading["leader"] else "standby")
    print(f"cartif-bot run: listening on http://{service.host}:{port}", flush=True)

    async def keep_leadership() -> None:
        poll = min(service.standby_poll_seconds, float(settings.schedule.interval_seconds))
        while not runner.stopping:
            await asyncio.sleep(poll)
            if leading["leader"]:
                if runner.current is None and not await asyncio.to_thread(leadership.still_held):
                    leading["leader"] = False
                    log.warning("lost the leader lock; now a standby")
            elif await asyncio.to_thread(leadership.try_acquire):
                leading["leader"] = True
                log.info("leader: took over the %s lock", leadership.kind)
                runner.trigger("takeover")
            metrics.leader.set(1 if leading["leader"] else 0)

    async def pump_notifications() -> None:
        while True:
            await requests.wait(None)
            await asyncio.sleep(SETTLE_SECONDS)
            if requests.take() and leading["leader"]:
                runner.trigger("notification")

    helpers = [asyncio.create_task(keep_leadership(), name="leadership"),
               asyncio.create_task(pump_notifications(), name="notifications")]
    if leading["leader"]:
        runner.trigger("start")
    try:
        await runner.run_forever()
    finally:
        for task in helpers:
            task.cancel()
        for task in helpers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await server_task
        await asyncio.to_thread(leadership.release)
        metrics.uninstall()
        store.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        log.info("stopped cleanly")
        sys.stdout.flush()
    return 0
