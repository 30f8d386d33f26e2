"""The local tenant as one ASGI app: routing, authentication, throttling, faults and statistics.

Every request, from the network or a ``$batch`` sub-request, goes through ``Tenant.dispatch``:

    stats ← faults → route → authenticate (graph/sharepoint) → charge resource units → handler

so the admin API's counts, the throttling model and injected faults apply to every surface
alike. Errors are rendered in the envelope of the surface that was called (Graph JSON error,
OData v3 ``odata.error``/``error``, OAuth error).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from emulator.http import Caller, Ctx, Headers, HttpError, Req, Resp, Route, Router, parse_query
from emulator.limits import Faults, Stats, Throttle, client_hint
from emulator.state import State, StateError, iso

log = logging.getLogger("emulator")

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclasses.dataclass
class TenantConfig:
    """How one local tenant is set up (``cartif-bot emulator serve`` options)."""

    data_dir: Path
    host: str = "localhost"
    port: int = 0
    ru_per_minute: int = 1200
    max_put_bytes: int = 250 * 1024 * 1024  # current Graph docs; older docs said 4 MB
    notification_delay: float = 1.0  # seconds between a change and its change notification
    token_lifetime: int = 3599

    @property
    def base_url(self) -> str:
        return f"https://{self.host}:{self.port}"


class Tenant:
    """State plus behaviour: what the ASGI entry point and the surface modules share."""

    def __init__(self, config: TenantConfig) -> None:
        from emulator import admin, entra, graph_drive, graph_misc, identity, sharepoint, teams

        self.config = config
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.state = State(config.data_dir / "tenant.sqlite3")
        self.identity = identity.Identity(self)
        self.stats = Stats()
        self.throttle = Throttle(config.ru_per_minute, self.stats)
        self.faults = Faults()
        self.router = Router()
        self.background: set[asyncio.Task[Any]] = set()
        for module in (entra, graph_drive, graph_misc, sharepoint, teams, admin):
            module.register(self.router)

    @property
    def base_url(self) -> str:
        return self.config.base_url

    @property
    def tenant_id(self) -> str:
        return self.state.meta("tenant_id") or ""

    def spawn(self, coro: Awaitable[Any]) -> None:
        """Run background work (change notifications, validation calls) without awaiting it."""
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    # ------------------------------------------------------------------ ASGI
    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = bytearray()
        while True:
            message = await receive()
            body.extend(message.get("body", b""))
            if not message.get("more_body"):
                break
        headers = Headers([(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]])
        host = headers.get("host") or f"{self.config.host}:{self.config.port}"
        req = Req(method=scope["method"].upper(), path=scope["path"], query=parse_query(
            scope.get("query_string", b"").decode("latin-1")), headers=headers, body=bytes(body),
            base_url=f"{scope.get('scheme', 'https')}://{host}",
            raw_path=scope.get("raw_path", b"").decode("latin-1"),
            client_host=(scope.get("client") or ("", 0))[0])
        resp = await self.dispatch(req, transport_send=send)
        if resp is None:  # a connection reset was injected: the transport is already closed
            return
        await send({"type": "http.response.start", "status": resp.status,
                    "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in resp.headers]})
        await send({"type": "http.response.body", "body": resp.body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for task in list(self.background):
                    task.cancel()
                self.state.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # ------------------------------------------------------------------ dispatch
    async def dispatch(self, req: Req, *, caller: Caller | None = None,
                       transport_send: Send | None = None, in_batch: bool = False) -> Resp | None:
        """Answer one request. ``caller`` is given for ``$batch`` sub-requests (already authenticated)."""
        started = time.perf_counter()
        route, params, path_matched = self.router.match(req.method, req.path)
        route_name = route.name if route else "unmatched"
        ru = 0
        client_key = caller.client_id if caller else client_hint(req)  # verified below, after faults
        try:
            if route is None:
                if path_matched:
                    raise HttpError(405, "invalidRequest", f"The HTTP method '{req.method}' is not allowed here.")
                raise HttpError(400 if req.path.startswith("/v1.0") else 404,
                                "invalidRequest" if req.path.startswith("/v1.0") else "itemNotFound",
                                f"Resource not found for the segment '{req.path}'.")
            if route.surface not in ("admin",):
                if not in_batch:
                    # The client chose when the $batch envelope left, not when the service reached each of
                    # its sub-requests: only the envelope's arrival can be inside a Retry-After it was given.
                    self.throttle.note_arrival(client_key)
                fault = self.faults.pick(route.name, req.path, req.method)
                if fault is not None:
                    injected = await self.faults.act(fault, self, transport_send)
                    if injected is None and fault.kind == "reset":
                        self.stats.record(req.method, route_name, 0, 0, client_key, time.perf_counter() - started)
                        return None
                    if injected is not None:
                        if injected.status in (429, 503):
                            self.throttle.note_retry_after(client_key or req.client_host, injected)
                        raise injected  # rendered in the surface's envelope below
            ctx = Ctx(req, params, self, route, caller)
            if route.surface in ("graph", "sharepoint") and caller is None:
                ctx.caller = self.identity.authenticate(req, route.surface)
            if ctx.caller is not None:
                client_key = ctx.caller.client_id
                ru = self._cost(route, ctx)
                denied = self.throttle.charge(client_key, ru)
                if denied is not None:
                    self.stats.record(req.method, route_name, denied.status, ru, client_key,
                                      time.perf_counter() - started)
                    return self._render_error(route, req, HttpError(
                        denied.status, "activityLimitReached" if route.surface == "graph" else "throttled",
                        "The request has been throttled", inner_code="throttledRequest",
                        headers=denied.headers))
            seq_before = self.state.current_seq()
            resp = await route.handler(ctx)
            if self.state.current_seq() != seq_before:
                self._changed_since(seq_before)
            secured = self.state.take_security_changes()
            if secured:
                self._permissions_changed(secured)
        except HttpError as exc:
            resp = self._render_error(route, req, exc)
        except StateError as exc:
            resp = self._render_error(route, req, HttpError(exc.status, exc.code, exc.message))
        except Exception as exc:
            log.exception("unhandled error in %s %s", req.method, req.path)
            resp = self._render_error(route, req, HttpError(500, "generalException", f"{type(exc).__name__}: {exc}"))
        resp.headers.append(("request-id", _request_id()))
        resp.headers.extend(self.throttle.rate_limit_headers(client_key))
        self.stats.record(req.method, route_name, resp.status, ru, client_key, time.perf_counter() - started)
        return resp

    def _changed_since(self, seq: int) -> None:
        """Content changed (through any surface): schedule change notifications for those drives.

        Hooked here rather than in each handler so that Graph, SharePoint REST and admin-seeded
        changes all notify alike, as SharePoint's own change pipeline does.
        """
        from emulator import graph_misc

        notify = getattr(graph_misc, "notify_drive_change", None)
        if notify is None:
            return
        for row in self.state.q("SELECT DISTINCT drive_id FROM items WHERE seq > ?", (seq,)):
            notify(self, row["drive_id"])

    def _permissions_changed(self, drive_ids: set[str]) -> None:
        """Permissions changed (role assignments, inheritance, sharing links): only subscriptions
        made with ``Prefer: includesecuritywebhooks`` are told (graph-api.md §2.18)."""
        from emulator import graph_misc

        for drive_id in drive_ids:
            graph_misc.notify_drive_change(self, drive_id, security=True)

    def _cost(self, route: Route, ctx: Ctx) -> int:
        if route.cost is None:
            return 0
        return route.cost if isinstance(route.cost, int) else route.cost(ctx)

    def _render_error(self, route: Route | None, req: Req, exc: HttpError) -> Resp:
        surface = route.surface if route else ("sharepoint" if "/_api/" in req.path.lower() else "graph")
        headers = list(exc.headers)
        if surface == "sharepoint":
            from emulator.sharepoint import render_error

            return render_error(req, exc)
        if surface == "entra":
            body = {"error": exc.code, "error_description": exc.message, "error_codes": [],
                    "timestamp": iso(), "trace_id": _request_id(), "correlation_id": _request_id()}
            return Resp(exc.status, json.dumps(body).encode(), [("content-type", "application/json"), *headers])
        error: dict[str, Any] = {"code": exc.code, "message": exc.message}
        inner: dict[str, Any] = {"date": iso()[:19], "request-id": _request_id(),
                                 "client-request-id": req.headers.get("client-request-id") or _request_id()}
        if exc.inner_code:
            inner = {"code": exc.inner_code, **inner}
        error["innerError"] = inner
        return Resp(exc.status, json.dumps({"error": error}).encode(),
                    [("content-type", "application/json"), *headers])


def _request_id() -> str:
    return str(uuid.uuid4())


def require_site(ctx: Ctx, site_id: str, need: str) -> None:
    """Authorize the caller on a site: ``need`` is ``read``, ``write`` or ``manage`` (permissions).

    Tenant-wide roles (``Sites.Read.All``, ``Sites.ReadWrite.All``, ``Sites.Manage.All``,
    ``Sites.FullControl.All``) apply everywhere; ``Sites.Selected`` applies where the site has
    a grant for the app (``POST /sites/{id}/permissions``) of a sufficient role. Anything else
    is 403 ``accessDenied``, as Graph and SharePoint answer a valid token without a grant.
    """
    caller = ctx.caller
    if caller is None:
        raise HttpError(401, "InvalidAuthenticationToken", "Access token is empty.")
    roles = caller.roles
    tenant_wide = {
        "read": {"Sites.Read.All", "Sites.ReadWrite.All", "Sites.Manage.All", "Sites.FullControl.All"},
        "write": {"Sites.ReadWrite.All", "Sites.Manage.All", "Sites.FullControl.All"},
        "manage": {"Sites.FullControl.All"},
    }[need]
    if roles & tenant_wide:
        return
    if "Sites.Selected" in roles:
        granted = {r.lower() for r in ctx.state.app_site_roles(caller.client_id, site_id)}
        enough = {"read": {"read", "write", "manage", "owner", "fullcontrol"},
                  "write": {"write", "manage", "owner", "fullcontrol"},
                  "manage": {"owner", "fullcontrol"}}[need]
        if granted & enough:
            return
    raise HttpError(403, "accessDenied", "Either scp or roles claim need to be present in the token."
                    if not roles else "Access denied", sp_code="-2147024891, System.UnauthorizedAccessException")
