"""The service's HTTP surface: one ASGI app for Graph notifications, the API, health and metrics.

Where it sits: ``bot.service.serving`` runs ``build_app(...)`` under uvicorn next to the cycle
runner, in one event loop. Handlers only read state or call ``CycleRunner.trigger``: a cycle
never runs inside a request, so every answer leaves at once.

Routes::

    POST {notifications path}  Graph change notifications (bot.receiver.Receiver; only when
                               notifications.url is set) → a "notification" trigger
    POST /api/sync             manual trigger (bearer: static token or Entra ID with the role)
                               → 202 {"run_id", "status", "url"}; 503 on a standby
    GET  /api/runs             the most recent runs, newest first (?limit=N, at most 200; from the
                               store's run history, so they survive a restart; queued/running first)
    GET  /api/runs/{id}        a run's progress and result (same credentials; memory, then the store)
    GET  /api/status           role, schedule, last cycles, changes, drift findings, outbox depth
    GET  /healthz              200 while the process serves
    GET  /readyz               200 when the store answers and the service is not stopping, else 503
    GET  /metrics              Prometheus text format
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.receiver import Message, Receive, Receiver, Scope, Send
from bot.service.authn import Caller, Forbidden, TriggerAuth, Unauthorized
from bot.service.history import LIST_MAX
from bot.service.metrics import CONTENT_TYPE_LATEST, ServiceMetrics
from bot.service.running import CycleRunner, Run
from bot.store import Store

__all__ = ["ServiceApp", "build_app"]

_CHALLENGE = {"www-authenticate": 'Bearer realm="cartif-bot", error="invalid_token"'}


class ServiceApp:
    """The one ASGI app: the notification receiver on its path, Starlette for the rest."""

    def __init__(self, api: Starlette, metrics: ServiceMetrics, receiver: Receiver | None) -> None:
        self.api = api
        self.metrics = metrics
        self.receiver = receiver

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.api(scope, receive, send)
            return
        path = str(scope.get("path") or "/")
        receiver = self.receiver
        is_receiver = receiver is not None and path.rstrip("/") == receiver.path.rstrip("/")
        route = "notifications" if is_receiver else _route_label(path)
        status = {"code": 500}

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            if receiver is not None and is_receiver:
                await receiver(scope, receive, counting_send)
            else:
                await self.api(scope, receive, counting_send)
        finally:
            self.metrics.api_requests.labels(route, str(status["code"])).inc()


def _route_label(path: str) -> str:
    # Bounded label values: run ids and unknown paths must not create a series each.
    if path.startswith("/api/runs/"):
        return "/api/runs/{id}"
    if path in ("/api/sync", "/api/runs", "/api/status", "/healthz", "/readyz", "/metrics"):
        return path
    return "other"


def build_app(runner: CycleRunner, auth: TriggerAuth, metrics: ServiceMetrics, store: Store, *,
              receiver: Receiver | None, role: Callable[[], str], status_extra: Callable[[], dict[str, Any]]
              ) -> ServiceApp:
    """The service's ASGI app (see the module docstring)."""

    async def authorise(request: Request) -> Caller | Response:
        try:
            return await auth.check(request.headers.get("authorization"))
        except Unauthorized as exc:
            return JSONResponse({"error": "unauthorized", "message": str(exc)}, 401, headers=_CHALLENGE)
        except Forbidden as exc:
            return JSONResponse({"error": "forbidden", "message": str(exc)}, 403)

    async def sync(request: Request) -> Response:
        caller = await authorise(request)
        if isinstance(caller, Response):
            return caller
        if role() != "leader":
            return JSONResponse({"error": "standby", "message": "this replica is a standby; the leader runs "
                                 "cycles — retry against the service address"}, 503, headers={"retry-after": "5"})
        if runner.stopping:
            return JSONResponse({"error": "stopping", "message": "the service is shutting down"}, 503)
        busy = runner.current
        run = runner.trigger("manual", by=caller.kind + (f":{caller.app_id}" if caller.app_id else ""))
        body = {"run_id": run.id, "status": run.status, "url": f"/api/runs/{run.id}",
                "after": busy.id if busy is not None and busy is not run else None, "triggers": run.triggers,
                "by": caller.kind}
        return JSONResponse(body, 202, headers={"location": f"/api/runs/{run.id}"})

    async def get_run(request: Request) -> Response:
        caller = await authorise(request)
        if isinstance(caller, Response):
            return caller
        run_id = request.path_params["run_id"]
        run = runner.runs.get(run_id)
        if run is None and runner.history is not None:
            run = await asyncio.to_thread(runner.history.get, run_id)
        if run is None:
            return JSONResponse({"error": "not_found", "message": "no such run (or no longer remembered)"}, 404)
        return JSONResponse(run.as_json())

    async def finished_runs(count: int) -> list[Run]:
        # The store's history survives restarts; without one (tests) the runner's memory answers.
        if runner.history is None:
            return runner.last_runs(count)
        stored = await asyncio.to_thread(runner.history.recent, count + 2)
        return [r for r in stored if r.done and r.id not in _live(runner)][:count]

    async def list_runs(request: Request) -> Response:
        caller = await authorise(request)
        if isinstance(caller, Response):
            return caller
        try:
            limit = int(request.query_params.get("limit", "20"))
        except ValueError:
            return JSONResponse({"error": "bad_request", "message": "limit: a whole number, 1 to "
                                 f"{LIST_MAX}"}, 400)
        limit = max(1, min(limit, LIST_MAX))
        live = [r for r in (runner.queued, runner.current) if r is not None]
        runs = live + await finished_runs(limit)
        return JSONResponse({"runs": [r.as_json() for r in runs[:limit]], "limit": limit})

    async def status(request: Request) -> Response:
        caller = await authorise(request)
        if isinstance(caller, Response):
            return caller
        last = await finished_runs(10)
        permissions = next((s for r in last for s in r.steps if s.name == "permissions"
                            and s.status == "succeeded"), None)
        sync_step = next((s for r in last for s in r.steps if s.name == "sync" and s.status == "succeeded"), None)
        depth = await asyncio.to_thread(_outbox_depth, store)
        metrics.outbox_depth.set(depth)
        return JSONResponse({
            "role": role(), "schedule": runner.schedule.describe(),
            "next_cycle_at": runner.next_scheduled.isoformat() if runner.next_scheduled else None,
            "current": runner.current.as_json() if runner.current else None,
            "last_cycles": [{"id": r.id, "reason": r.reason, "status": r.status, "finished_at": r.finished_at,
                             "seconds": r.seconds, "steps": {s.name: s.status for s in r.steps},
                             "requested_by": r.requested_by, "error": r.error} for r in last],
            "changes": {"last_sync": sync_step.counts if sync_step else None,
                        "recent": list(sync_step.detail.get("changes", []))[:20] if sync_step else []},
            "drift_findings": permissions.findings if permissions else [],
            "outbox_depth": depth, **status_extra()})

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        try:
            await asyncio.to_thread(_ping, store)
        except Exception as exc:
            return JSONResponse({"ready": False, "reason": f"store: {type(exc).__name__}"}, 503)
        if runner.stopping:
            return JSONResponse({"ready": False, "reason": "stopping"}, 503)
        return JSONResponse({"ready": True, "role": role()})

    async def metrics_route(_: Request) -> Response:
        metrics.outbox_depth.set(await asyncio.to_thread(_outbox_depth, store))
        metrics.leader.set(1 if role() == "leader" else 0)
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    api = Starlette(routes=[
        Route("/api/sync", sync, methods=["POST"]),
        Route("/api/runs", list_runs, methods=["GET"]),
        Route("/api/runs/{run_id}", get_run, methods=["GET"]),
        Route("/api/status", status, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_route, methods=["GET"]),
    ])
    return ServiceApp(api, metrics, receiver)


def _live(runner: CycleRunner) -> set[str]:
    return {r.id for r in (runner.queued, runner.current) if r is not None}


def _ping(store: Store) -> None:
    with store.engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))


def _outbox_depth(store: Store) -> int:
    return len(store.outbox("pending"))
