"""The steps of one cycle, behind a small protocol: each reads the world, acts, and returns counts.

Where it sits: ``bot.service.running.CycleRunner`` runs ``build_steps(settings)`` in order for
every cycle (scheduled, manual or notification-driven) of ``cartif-bot run``. A step is level-based
(it re-reads actual state, so running it twice does nothing the second time) and owns its own
transactions, so stopping between two steps leaves nothing half-applied.

The cycle, in order::

    subscription  (with notifications.url) keep the Graph change-notification subscription alive
    sync          Graph delta → change log (bot.syncing, the same code as ``cartif-bot sync``)
    permissions   observe → plan → guard → apply → verify (bot.permissions, as ``cartif-bot apply``)
    circulation   pick-up of texts dropped in "To circulate" folders (bot.registering.CirculationStep)
    notices       route and post the outbox to Teams (bot.notices.step.NoticesStep)

A failing step is recorded and the next one still runs: each step checks its own preconditions
and reconciles independently (the permission guard does not depend on the sync having worked).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from typing import Any, Protocol

from bot.notices.step import NoticesStep
from bot.notifications import SyncRequests
from bot.registering import CirculationStep
from bot.store import Store
from config.settings import Settings

__all__ = ["CycleContext", "CycleStep", "PermissionsStep", "StepResult", "SubscriptionStep", "SyncStep",
           "build_steps"]


@dataclasses.dataclass(frozen=True)
class StepResult:
    """What a step did: ``counts`` (what Prometheus and /api/status show) and free-form ``detail``."""

    counts: Mapping[str, int] = dataclasses.field(default_factory=dict)
    detail: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    #: drift or other findings worth showing on /api/status (e.g. permission differences found)
    findings: tuple[str, ...] = ()


@dataclasses.dataclass
class CycleContext:
    """What a step gets: the run, the settings and the open store, and the earlier steps' results."""

    run_id: str
    reason: str
    settings: Settings
    store: Store
    results: dict[str, StepResult] = dataclasses.field(default_factory=dict)


class CycleStep(Protocol):
    """One step of the cycle. ``run`` raises on failure; the runner records the error and goes on."""

    name: str

    async def run(self, context: CycleContext) -> StepResult: ...


class SyncStep:
    """Graph delta → the store's change log (``bot.syncing.sync_once``)."""

    name = "sync"

    async def run(self, context: CycleContext) -> StepResult:
        from bot.syncing import sync_once

        result = await sync_once(context.settings)
        counts = {"changes": len(result.changes), "items_seen": result.items_seen, "pages": result.pages,
                  "tracked": result.tracked, "own_writes": result.own_writes}
        counts.update({f"changes_{kind}": n for kind, n in result.counts().items()})
        return StepResult(counts, {"cycle_id": result.cycle_id, "mode": result.mode,
                                   "changes": [c.as_json() for c in result.changes[:50]]})


class PermissionsStep:
    """Folder permissions and groups → the structure, guarded (``bot.permissions``, as ``apply``).

    The permission connectors are synchronous (office365-rest-python-client), so the step runs in
    a worker thread; the event loop keeps answering health checks and triggers meanwhile.
    """

    name = "permissions"

    async def run(self, context: CycleContext) -> StepResult:
        return await asyncio.to_thread(self._run, context)

    def _run(self, context: CycleContext) -> StepResult:
        from bot.notices.routing import observed_readers
        from bot.permissions import open_session

        with open_session(context.settings, None) as session:
            result = session.apply(context.store, force=False, dry_run=False)
            # For the notices step: permissions made by hand that routing must honour (usually none).
            observed = observed_readers(session.desired, result.actual)
        applied = len([o for o in result.outcomes if o.ok])
        findings = tuple(f"{a.kind} {a.target} {a.principal or ''} {a.before or '-'} → {a.after or '-'}".strip()
                         for a in result.plan)
        return StepResult({"drift": len(result.plan), "applied": applied, "failed": len(result.failed),
                           "remaining": len(result.remaining)},
                          {"cycle_id": result.cycle_id, "planned": result.plan.counts(),
                           "notes": list(result.plan.notes), "observed_readers": observed}, findings[:100])


class SubscriptionStep:
    """Keeps the library's Graph change-notification subscription alive (``notifications.url`` set).

    Renewed when a third of its lifetime is left, re-created when it vanished; the cycle interval
    (minutes) is far below the lifetime (days), so checking once per cycle is enough. A
    ``reauthorizationRequired`` lifecycle notification (``requests``, filled by the receiver)
    triggers a cycle whose first step renews at once: Graph holds the notifications until then.
    """

    name = "subscription"

    def __init__(self, requests: SyncRequests | None = None) -> None:
        # Without a receiver's requests (steps built by hand) no lifecycle event ever arrives.
        self.requests = requests if requests is not None else SyncRequests()

    async def run(self, context: CycleContext) -> StepResult:
        from bot.syncing import _default_drive
        from connectors.auth import Authenticator
        from connectors.graph import build_graph_client
        from connectors.graph_subscriptions import SubscriptionManager

        settings = context.settings
        url, secret = settings.notifications.url, settings.notifications.client_state
        assert url is not None and secret is not None
        authenticator = Authenticator(settings)
        try:
            graph = build_graph_client(settings, authenticator)
            drive_id = settings.endpoints.drive_id or await _default_drive(graph, settings.endpoints.site_id)
            # Permission changes too: the cycle they trigger puts hand-made drift right at once.
            manager = SubscriptionManager(graph, context.store, drive_id, notification_url=url,
                                          client_state=secret.get_secret_value(), include_security=True)
            # Events put back if this fails: the next cycle answers them.
            with self.requests.answering_lifecycle() as lifecycle:
                sub = await manager.ensure(lifecycle)
        finally:
            authenticator.close()
        return StepResult({"renewal_due_in_seconds": int(manager.renewal_due_in(sub)),
                           "lifecycle_events": len(lifecycle)},
                          {"subscription_id": sub.id, "expiration": sub.expiration,
                           "lifecycle": sorted(set(lifecycle.values()))})


def build_steps(settings: Settings, *, requests: SyncRequests | None = None) -> list[CycleStep]:
    """The cycle's steps, in order; ``requests`` carries the receiver's lifecycle events."""
    steps: list[CycleStep] = [SyncStep(), PermissionsStep()]
    if settings.notifications.url and settings.notifications.client_state is not None:
        steps.insert(0, SubscriptionStep(requests))
    # After permissions: circulation writes register entries and their outbox events (into folders
    # whose grants are now right), then notices drains the outbox — this cycle's changes included.
    steps.append(CirculationStep())
    steps.append(NoticesStep())
    return steps
