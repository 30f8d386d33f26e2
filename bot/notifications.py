"""Graph change notifications, the pure part: parse a notification POST, check its clientState,
and coalesce any number of notifications into one pending sync request.

Where it sits: ``bot.receiver`` (the ASGI endpoint Graph POSTs to) parses bodies and checks
clientState here, then calls ``SyncRequests.request``; ``bot.watching`` waits on the same
``SyncRequests`` and runs ONE incremental delta cycle for everything that arrived meanwhile.
``connectors.graph_subscriptions`` stores ``client_state_hash`` of the secret, never the secret.

Drive notifications carry no change detail (graph-api.md §2.18, anchors-sync-notify §0): they
only say "something in this drive changed", so ten of them ask for exactly what one asks for —
a delta run from the stored cursor. That is why coalescing loses nothing.

Lifecycle notifications arrive on the same URL (we register it as both notificationUrl and
lifecycleNotificationUrl, which Graph allows) and are told apart by ``lifecycleEvent``. For a
drive Graph sends only ``reauthorizationRequired``: change notifications are paused until the
app reauthorizes or renews the subscription. They are kept per subscription in
``SyncRequests.lifecycle`` for the subscription manager to answer (``take_lifecycle``), and each
also asks for a sync, since changes made while the flow was paused were never announced.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import json
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = [
    "LIFECYCLE_EVENTS",
    "MAX_BODY_BYTES",
    "Notification",
    "NotificationError",
    "SyncRequests",
    "client_state_hash",
    "client_state_matches",
    "parse_notifications",
    "split_by_client_state",
]

#: Graph's lifecycle events (change-notifications-lifecycle-events.md); drives get only the first.
LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")

#: Graph batches at most a few hundred notifications per POST, each well under 1 KB; a larger
#: body is not from Graph.
MAX_BODY_BYTES = 1_000_000


class NotificationError(ValueError):
    """A notification body that is not what Graph sends; the message says what is wrong (for a 400)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Notification:
    """One entry of a notification POST's ``value`` array (the fields a drive notification has)."""

    subscription_id: str
    client_state: str | None
    change_type: str
    resource: str
    tenant_id: str | None
    subscription_expiration: str | None
    #: "reauthorizationRequired", "subscriptionRemoved" or "missed" for a lifecycle notification
    #: (which has no changeType or resource); None for a change notification
    lifecycle_event: str | None = None


def parse_notifications(body: bytes) -> list[Notification]:
    """The notifications of a POST body ``{"value": [...]}``; ``NotificationError`` if malformed."""
    if len(body) > MAX_BODY_BYTES:
        raise NotificationError(f"body too large ({len(body)} bytes, at most {MAX_BODY_BYTES})")
    try:
        data: Any = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NotificationError(f"body is not JSON ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("value"), list):
        raise NotificationError('expected a JSON object {"value": [notification, ...]}')
    out: list[Notification] = []
    for index, entry in enumerate(data["value"]):
        if not isinstance(entry, dict):
            raise NotificationError(f"value[{index}] is not an object")
        sub_id, change, resource = entry.get("subscriptionId"), entry.get("changeType"), entry.get("resource")
        event = entry.get("lifecycleEvent")
        if event is not None and event not in LIFECYCLE_EVENTS:
            raise NotificationError(f"value[{index}].lifecycleEvent is not one of {', '.join(LIFECYCLE_EVENTS)}")
        required = (("subscriptionId", sub_id),) if event else (
            ("subscriptionId", sub_id), ("changeType", change), ("resource", resource))
        for name, field in required:
            if not isinstance(field, str) or not field:
                raise NotificationError(f"value[{index}].{name} is missing or not a string")
        state = entry.get("clientState")
        if state is not None and not isinstance(state, str):
            raise NotificationError(f"value[{index}].clientState is not a string")
        tenant, expiration = entry.get("tenantId"), entry.get("subscriptionExpirationDateTime")
        out.append(Notification(str(sub_id), state, str(change or ""), str(resource or ""),
                                tenant if isinstance(tenant, str) else None,
                                expiration if isinstance(expiration, str) else None, event))
    return out


def client_state_hash(secret: str) -> str:
    """SHA-256 hex of a clientState secret: what the store keeps instead of the secret."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def client_state_matches(received: str | None, expected: str) -> bool:
    """Constant-time comparison of a notification's clientState with our secret.

    Both sides are hashed first, so the comparison takes the same time whatever the lengths and
    contents: nothing about the secret leaks through timing. A missing clientState never matches.
    """
    if received is None or not expected:
        return False
    return hmac.compare_digest(client_state_hash(received), client_state_hash(expected))


def split_by_client_state(notifications: Sequence[Notification], expected: str
                          ) -> tuple[list[Notification], list[Notification]]:
    """(accepted, rejected): notifications whose clientState is our secret, and the others."""
    accepted: list[Notification] = []
    rejected: list[Notification] = []
    for item in notifications:
        (accepted if client_state_matches(item.client_state, expected) else rejected).append(item)
    return accepted, rejected


class SyncRequests:
    """Many notifications → one pending sync request.

    ``request()`` (the receiver, on each accepted POST) counts and raises a flag; the watch loop's
    ``wait()`` returns when the flag is up (or the timeout passes) and ``take()`` lowers it and
    returns how many requests it absorbed. Requests arriving while a cycle runs raise the flag
    again, so they get exactly one more cycle — never one per notification, never none.
    """

    def __init__(self) -> None:
        self._flag = asyncio.Event()
        self.pending = 0
        #: lifecycle events not yet answered: subscription id → the latest event
        self.lifecycle: dict[str, str] = {}
        #: requests ever made and cycles ever taken (for logs and tests)
        self.requested = 0
        self.taken = 0

    def note_lifecycle(self, subscription_id: str, event: str) -> None:
        """A lifecycle notification: remember it for the subscription manager, and ask for a sync."""
        self.lifecycle[subscription_id] = event
        self.request()

    def take_lifecycle(self) -> dict[str, str]:
        """The lifecycle events to answer now (subscription id → event); they are cleared."""
        events, self.lifecycle = self.lifecycle, {}
        return events

    def restore_lifecycle(self, events: dict[str, str]) -> None:
        """Put back events whose answer failed (a newer event for the same subscription wins)."""
        self.lifecycle = {**events, **self.lifecycle}

    @contextlib.contextmanager
    def answering_lifecycle(self) -> Iterator[dict[str, str]]:
        """The lifecycle events to answer in the block; put back if the block fails, so the next
        attempt answers them (the watch loop and the service's subscription step both use this)."""
        events = self.take_lifecycle()
        try:
            yield events
        except BaseException:
            self.restore_lifecycle(events)
            raise

    def request(self, count: int = 1) -> None:
        if count <= 0:
            return
        self.pending += count
        self.requested += count
        self._flag.set()

    @property
    def is_set(self) -> bool:
        return self._flag.is_set()

    async def wait(self, timeout: float | None) -> bool:
        """True when a request is pending, False when ``timeout`` seconds passed without one."""
        if self._flag.is_set():
            return True
        try:
            await asyncio.wait_for(self._flag.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def take(self) -> int:
        """Absorb every pending request into the cycle about to run; how many there were."""
        count, self.pending = self.pending, 0
        self._flag.clear()
        if count:
            self.taken += 1
        return count
