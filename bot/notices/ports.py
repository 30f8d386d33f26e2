"""The notices step's port: how a card reaches a Teams channel, whatever carries it.

Where it sits: ``bot.notices.outbox.drain`` builds cards and calls ``Notifier.post``; today
``connectors.teams.WorkflowsNotifier`` implements it over Workflows webhooks. The port is shaped
so that the v2 transports of anchors-sync-notify §5 fit without a change here:

* a **Bot Framework** proactive-message transport keeps a conversation reference per channel
  (``channels()`` lists the ones it has) and CAN deduplicate: it may set the activity id from
  ``key`` and report ``idempotent = True``, so the drain re-sends after an ambiguous crash;
* a **delegated Graph** ``POST /teams/{id}/channels/{id}/messages`` transport maps channel names
  to (team id, channel id) the same way, with ``max_message_bytes`` its own limit.

Failures are raised as ``connectors.errors.ConnectorError`` subclasses: ``ServerError``,
``Throttled`` and ``TransportError`` are temporary (the drain backs off), other errors permanent.
``MemoryNotifier`` is the in-memory fake for unit tests, with failure injection.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, Protocol

from connectors.errors import ConnectorError, ServerError

__all__ = ["Delivery", "MemoryNotifier", "Notifier"]


@dataclasses.dataclass(frozen=True, slots=True)
class Delivery:
    """What the transport learnt when it handed a card over (not proof that it rendered)."""

    channel: str
    status: int
    #: the transport's reference for the message (a Workflows run id, an activity id), if any
    reference: str | None = None


class Notifier(Protocol):
    """Posts one Adaptive Card to one channel."""

    #: True when posting twice with the same ``key`` shows the card once (the transport dedupes)
    idempotent: bool
    #: the largest request the transport accepts, in bytes
    max_message_bytes: int

    def channels(self) -> frozenset[str]:
        """The channels this transport can post to (configured webhooks, conversation references)."""

    async def post(self, channel: str, card: dict[str, Any], *, key: str) -> Delivery:
        """Hand ``card`` to ``channel``; ``key`` identifies the notice (for transports that dedupe)."""


class MemoryNotifier:
    """An in-memory ``Notifier``: records posts; ``fail_next`` queues errors to raise first."""

    idempotent = False
    max_message_bytes = 28 * 1024

    def __init__(self, channels: Iterable[str]) -> None:
        self._channels = frozenset(channels)
        self.posted: list[tuple[str, dict[str, Any], str]] = []
        self.fail_next: list[ConnectorError] = []
        self.down = False

    def channels(self) -> frozenset[str]:
        return self._channels

    async def post(self, channel: str, card: dict[str, Any], *, key: str) -> Delivery:
        if self.down:
            raise ServerError(503, "serviceNotAvailable", "down", surface="teams")
        if self.fail_next:
            raise self.fail_next.pop(0)
        self.posted.append((channel, card, key))
        return Delivery(channel, 202, f"memory-{len(self.posted)}")
