"""The watch loop: keep the library's subscription alive, and run one delta cycle per burst of
change notifications, or per safety-net poll.

Where it sits: ``cartif-bot watch`` runs ``watch`` next to the notification receiver
(``bot.receiver``) in one event loop; they share a ``bot.notifications.SyncRequests``. Each cycle
is ``bot.syncing.Syncer.run`` — the same transactional cycle as ``cartif-bot sync`` — so the
change log gets each change exactly once whether a notification, a poll or a manual sync found it.

The loop::

    start   ensure the subscription (unless poll-only), run a cycle to catch up
    wait    until a notification request is pending, or the poll interval passes
    settle  a short pause (``settle_seconds``) so a burst of notifications lands in the same cycle
    take    absorb every pending request, then run ONE incremental cycle; requests that arrive
            during the cycle make exactly one more
    renew   before each cycle, ``SubscriptionManager.ensure`` renews when a third of the lifetime
            is left or a reauthorizationRequired lifecycle notification came (which paused the
            notifications; the cycle that follows reads what changed meanwhile), and re-creates a
            subscription that vanished (404)
    stop    on a clean stop (cancelled: Ctrl-C, SIGTERM) the subscription is deleted on the tenant

Poll-only mode (no ``notifications.url``, or ``--poll-only``) skips the subscription and polls
every ``notifications.poll_seconds``. A failed cycle (the tenant down, throttled past the retry
budget, the mass-deletion guard) is logged and retried at the next wake-up; nothing is lost,
because the cursor only moves with a committed cycle.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bot.notifications import SyncRequests
from bot.store import Store
from bot.syncing import Syncer, SyncResult, _default_drive

if TYPE_CHECKING:
    from connectors.graph_subscriptions import SubscriptionManager

__all__ = ["DEFAULT_SETTLE_SECONDS", "Cycle", "watch"]

log = logging.getLogger(__name__)

#: After the first notification of a burst, wait this long before syncing so the rest of the burst
#: joins the same cycle. Graph already batches notifications; this only spares a second cycle.
DEFAULT_SETTLE_SECONDS = 0.3


@dataclasses.dataclass(frozen=True)
class Cycle:
    """One run of the loop, as reported to ``on_cycle``."""

    #: "start", "notification" or "poll"
    reason: str
    #: notifications absorbed by this cycle
    notifications: int
    result: SyncResult | None
    error: str | None
    seconds: float


async def watch(settings: Any, store: Store, *, once: bool = False, poll_only: bool = False,
                requests: SyncRequests | None = None, on_cycle: Callable[[Cycle], None] | None = None,
                settle_seconds: float = DEFAULT_SETTLE_SECONDS, poll_seconds: float | None = None) -> None:
    """Watch the library until cancelled (or, with ``once``, for a single cycle). See the module doc.

    ``requests`` is what the receiver signals (a fresh one when omitted: then only polls wake the
    loop); ``on_cycle`` is called after every cycle. With ``once`` a failing cycle raises.
    """
    from connectors.auth import Authenticator
    from connectors.graph import build_graph_client
    from connectors.graph_delta import GraphDeltaReader
    from connectors.graph_subscriptions import SubscriptionManager

    requests = requests if requests is not None else SyncRequests()
    interval = float(poll_seconds if poll_seconds is not None else settings.notifications.poll_seconds)
    authenticator = Authenticator(settings)
    try:
        graph = build_graph_client(settings, authenticator)
        drive_id = settings.endpoints.drive_id or await _default_drive(graph, settings.endpoints.site_id)
        syncer = Syncer(store, GraphDeltaReader(graph, drive_id, page_size=settings.sync.page_size), drive_id,
                        own_app_id=settings.auth.client_id,
                        max_deletion_share=settings.sync.max_deletion_share)
        manager: SubscriptionManager | None = None
        url, secret = settings.notifications.url, settings.notifications.client_state
        if url and secret is not None and not poll_only:
            manager = SubscriptionManager(graph, store, drive_id, notification_url=url,
                                          client_state=secret.get_secret_value())
        else:
            log.info("poll-only: no notification URL; polling delta every %.0f s", interval)
        try:
            await _loop(syncer, manager, requests, interval, once=once, on_cycle=on_cycle,
                        settle_seconds=settle_seconds)
        except asyncio.CancelledError:
            # A clean stop (Ctrl-C, SIGTERM, the caller cancelling): nobody will receive notifications
            # any more, so delete the subscription rather than let Graph post into the void until it
            # expires (up to 42,300 minutes). A crash leaves it; the next start reuses or renews it.
            if manager is not None:
                await _unsubscribe(manager)
            raise
    finally:
        authenticator.close()


async def _unsubscribe(manager: SubscriptionManager) -> None:
    sub = manager.current()
    if sub is None:
        return
    try:
        await manager.delete(sub)
        log.info("subscription %s deleted on stop", sub.id)
    except Exception as exc:  # the tenant unreachable on the way out: it expires by itself
        log.warning("could not delete subscription %s on stop (%s); it expires by itself", sub.id, exc)


async def _loop(syncer: Syncer, manager: SubscriptionManager | None, requests: SyncRequests, interval: float, *,
                once: bool, on_cycle: Callable[[Cycle], None] | None, settle_seconds: float) -> None:
    reason, absorbed = "start", 0
    while True:
        timeout = interval
        if manager is not None:
            try:
                with requests.answering_lifecycle() as lifecycle:  # put back on failure: answered next time
                    sub = await manager.ensure(lifecycle)
                timeout = min(timeout, max(manager.renewal_due_in(sub), 1.0))
            except Exception as exc:  # the receiver unreachable, the tenant down: poll meanwhile
                if once:
                    raise
                log.warning("change notifications unavailable (%s); polling every %.0f s", exc, interval)
        started = time.perf_counter()
        try:
            result: SyncResult | None = await syncer.run()
            error = None
        except Exception as exc:
            if once:
                raise
            log.warning("sync cycle failed (%s: %s); retrying at the next wake-up", type(exc).__name__, exc)
            result, error = None, f"{type(exc).__name__}: {exc}"
        if on_cycle is not None:
            on_cycle(Cycle(reason, absorbed, result, error, time.perf_counter() - started))
        if once:
            return
        if await requests.wait(timeout):
            await asyncio.sleep(settle_seconds)
            reason = "notification"
        else:
            reason = "poll"
        absorbed = requests.take()
