"""The change-notification receiver: a plain ASGI app Graph POSTs to, run under uvicorn.

Where it sits: ``cartif-bot watch`` runs it next to the watch loop (``bot.watching``) in one
event loop; an accepted notification calls ``SyncRequests.request`` and nothing else — the sync
itself runs in the loop, so every answer leaves at once (Graph wants a 2xx within 3 seconds, or
it retries and eventually drops the subscription's notifications; webhooks.md).

What it answers (graph-api.md §2.18, anchors-sync-notify §0):

* ``POST PATH?validationToken=…`` → 200 ``text/plain`` with the URL-decoded token (the handshake
  Graph makes before creating or updating a subscription's URL);
* ``POST PATH`` with ``{"value": [...]}`` → 202 with an empty body. Notifications whose
  clientState is not our secret are ignored and logged (count only: neither their clientState
  nor whether one matched is told to the sender, who gets the same 202). Lifecycle notifications
  (``lifecycleEvent``, same URL) are handed to ``SyncRequests.note_lifecycle``;
* a body that is not a notification list → 400 with a JSON error naming the problem;
* other paths 404, other methods 405.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

import uvicorn

from bot.notifications import (
    MAX_BODY_BYTES,
    NotificationError,
    SyncRequests,
    parse_notifications,
    split_by_client_state,
)

__all__ = ["Receiver", "serve_receiver"]

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Receiver:
    """ASGI app: the validation handshake and notification POSTs on ``path``."""

    def __init__(self, requests: SyncRequests, client_state: str, *, path: str = "/notifications") -> None:
        self.requests = requests
        self._client_state = client_state
        self.path = "/" + path.strip("/") if path.strip("/") else "/"
        #: counters for logs and tests
        self.accepted = 0
        self.rejected = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path = scope.get("path") or "/"
        if path.rstrip("/") != self.path.rstrip("/"):
            await _respond(send, 404, b'{"error": "not found"}', "application/json")
            return
        if scope["method"] != "POST":
            await _respond(send, 405, b'{"error": "only POST"}', "application/json", [(b"allow", b"POST")])
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        if "validationToken" in query:
            # parse_qs has decoded the token; Graph expects it back exactly, as text/plain.
            await _drain(receive)
            await _respond(send, 200, query["validationToken"][0].encode("utf-8"), "text/plain; charset=utf-8")
            return
        body = await _read_body(receive)
        if body is None:
            await _respond(send, 413, b'{"error": "body too large"}', "application/json")
            return
        try:
            notifications = parse_notifications(body)
        except NotificationError as exc:
            await _respond(send, 400, json.dumps({"error": f"not a change notification: {exc}"}).encode(),
                           "application/json")
            return
        accepted, rejected = split_by_client_state(notifications, self._client_state)
        self.accepted += len(accepted)
        self.rejected += len(rejected)
        if rejected:
            # The received value is not logged: it may be a guess at the secret.
            log.warning("ignored %d change notification(s) with a wrong clientState (subscriptions %s)",
                        len(rejected), ", ".join(sorted({n.subscription_id[:64] for n in rejected})))
        changes = [n for n in accepted if n.lifecycle_event is None]
        for lifecycle in (n for n in accepted if n.lifecycle_event is not None):
            log.warning("lifecycle notification %s for subscription %s", lifecycle.lifecycle_event,
                        lifecycle.subscription_id[:64])
            self.requests.note_lifecycle(lifecycle.subscription_id, str(lifecycle.lifecycle_event))
        if changes:
            self.requests.request(len(changes))
        await _respond(send, 202, b"", None)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _drain(receive: Receive) -> None:
    await _read_body(receive)


async def _respond(send: Send, status: int, body: bytes, content_type: str | None,
                   extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-length", str(len(body)).encode())]
    if content_type:
        headers.append((b"content-type", content_type.encode()))
    headers.extend(extra or [])
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def serve_receiver(app: Receiver, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[int]:
    """Run ``app`` under uvicorn in this event loop; yields the bound port (``port=0``: a free one)."""
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off", access_log=False)
    # uvicorn captures SIGINT/SIGTERM while it serves and re-raises them when it stops, so Ctrl-C
    # ends the receiver first and then the caller (the watch command) as usual.
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # raises the bind error
                raise RuntimeError("the notification receiver stopped during start-up")
            await asyncio.sleep(0.02)
        bound = port
        for srv in server.servers:
            for sock in srv.sockets:
                bound = int(sock.getsockname()[1])
        yield bound
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
