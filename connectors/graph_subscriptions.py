"""The library's Graph change-notification subscription: create, renew before expiry, re-create, delete.

Where it sits: ``bot.watching`` calls ``SubscriptionManager.ensure()`` at start and before every
wait; the subscription row lives in the store's ``subscriptions`` table (the clientState as a
hash only, ``bot.notifications.client_state_hash``). Calls go through msgraph-sdk's request
builders (a handful of small requests, so its models cost nothing here) and therefore through the
one retry layer (``connectors.retrying``).

Microsoft's rules this follows (graph-api.md §2.18, anchors-sync-notify §0):

* SharePoint/OneDrive for Business accept subscriptions on a drive's ROOT only, changeType
  ``updated`` only; the subscription is created only after the receiver answers the
  validationToken handshake, so the receiver must be up first.
* A driveItem subscription lives at most 42,300 minutes (~29 days); we ask for a little less
  (clocks differ) and renew when less than a third of the lifetime remains — days early, so a
  few failed renewals in a row still leave time.
* An expired or deleted subscription answers 404 to PATCH: it cannot be revived, so a new one
  is created (and the store row replaced). Notifications missed meanwhile are not lost: the
  next delta run from the stored cursor reads every change.
* Lifecycle notifications go to the same URL (lifecycleNotificationUrl = notificationUrl, which
  Graph allows). For a drive Graph sends only ``reauthorizationRequired``, and pauses change
  notifications until the app answers; we answer with one PATCH of a new expiration, which
  "performs both actions in one operation" (a /reauthorize and a PATCH within 10 minutes of each
  other can leave the subscription inconsistent, so we never mix them). ``subscriptionRemoved``
  (not sent for drives today) re-creates. A subscription stored without a lifecycle URL (made
  by an older version; the URL cannot be added by PATCH) is replaced once.
* ``include_security`` (the service, which corrects permissions) creates the subscription with
  ``Prefer: includesecuritywebhooks``: SharePoint then notifies permission changes too, so a
  folder shared by hand is put right within seconds rather than at the next scheduled cycle. A
  stored subscription made with the other choice is replaced (the header cannot be PATCHed in).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any

from kiota_abstractions.api_error import APIError
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.models.subscription import Subscription as GraphSubscription
from msgraph.graph_service_client import GraphServiceClient

from bot.notifications import client_state_hash
from bot.store import Store, Subscription
from connectors.errors import NotFound
from connectors.graph import from_api_error

__all__ = ["DEFAULT_LIFETIME", "MAX_LIFETIME", "RENEW_SHARE", "SubscriptionManager", "needs_renewal"]

log = logging.getLogger(__name__)

#: Graph's maximum lifetime of a driveItem subscription.
MAX_LIFETIME = dt.timedelta(minutes=42_300)
#: What we ask for: the maximum less a margin for clock differences (a request beyond the
#: maximum is refused with 400, not clamped).
DEFAULT_LIFETIME = MAX_LIFETIME - dt.timedelta(minutes=30)
#: Renew when less than this share of the lifetime remains.
RENEW_SHARE = 1 / 3


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def parse_time(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def format_time(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def needs_renewal(expiration: str, now: dt.datetime, lifetime: dt.timedelta = DEFAULT_LIFETIME) -> bool:
    """True when less than ``RENEW_SHARE`` of ``lifetime`` remains before ``expiration``."""
    return parse_time(expiration) - now < lifetime * RENEW_SHARE


class SubscriptionManager:
    """Keeps exactly one live subscription on ``drive_id``'s root for ``notification_url``."""

    def __init__(self, graph: GraphServiceClient, store: Store, drive_id: str, *, notification_url: str,
                 client_state: str, lifetime: dt.timedelta = DEFAULT_LIFETIME, include_security: bool = False,
                 now: Callable[[], dt.datetime] = _utc_now) -> None:
        if not dt.timedelta(minutes=45) <= lifetime <= MAX_LIFETIME:
            raise ValueError("a subscription lifetime is 45 to 42,300 minutes")
        self.graph = graph
        self.store = store
        self.drive_id = drive_id
        self.notification_url = notification_url
        self._client_state = client_state
        self._state_hash = client_state_hash(client_state)
        self.lifetime = lifetime
        self.include_security = include_security
        self.now = now

    # ------------------------------------------------------------------------------------------ queries
    def current(self) -> Subscription | None:
        """The stored subscription of this drive for our URL and secret, if any."""
        for sub in self.store.subscriptions(self.drive_id):
            if sub.notification_url == self.notification_url and sub.client_state_hash == self._state_hash:
                return sub
        return None

    def renewal_due_in(self, sub: Subscription) -> float:
        """Seconds until ``sub`` should be renewed (0 when due now)."""
        due = parse_time(sub.expiration) - self.lifetime * RENEW_SHARE
        return max(0.0, (due - self.now()).total_seconds())

    # ------------------------------------------------------------------------------------------ actions
    async def ensure(self, lifecycle: Mapping[str, str] | None = None) -> Subscription:
        """A live subscription: the stored one, renewed if due; created when there is none.

        ``lifecycle`` holds the lifecycle events received since the last call (subscription id →
        event, ``SyncRequests.take_lifecycle``): a ``reauthorizationRequired`` for ours renews it
        now, which also resumes its paused notifications; ``subscriptionRemoved`` re-creates it.
        Stored subscriptions of this drive for another URL or secret (settings changed) are
        deleted on the tenant (best effort) and forgotten.
        """
        for stale in self.store.subscriptions(self.drive_id):
            if stale.notification_url != self.notification_url or stale.client_state_hash != self._state_hash:
                await self.delete(stale)
        sub = self.current()
        events = dict(lifecycle or {})
        for other in set(events) - {sub.id if sub else ""}:
            log.info("lifecycle event %s for subscription %s, which is not (or no longer) ours: ignored",
                     events[other], other)
        if sub is None:
            return await self.create()
        if sub.lifecycle_notification_url is None or sub.include_security != self.include_security:
            log.info("subscription %s was created without lifecycle notifications or with another choice "
                     "of permission-change notifications; replacing it", sub.id)
            await self.delete(sub)
            return await self.create()
        event = events.get(sub.id)
        if event == "subscriptionRemoved":
            log.warning("subscription %s was removed by Graph; creating a new one", sub.id)
            self.store.delete_subscription(sub.id)
            return await self.create()
        if event == "reauthorizationRequired":
            log.warning("subscription %s needs reauthorization; renewing it", sub.id)
            return await self.renew(sub)
        if needs_renewal(sub.expiration, self.now(), self.lifetime):
            return await self.renew(sub)
        return sub

    async def create(self) -> Subscription:
        body = GraphSubscription(
            change_type="updated",
            notification_url=self.notification_url,
            resource=f"/drives/{self.drive_id}/root",
            expiration_date_time=self.now() + self.lifetime,
            client_state=self._client_state,
            lifecycle_notification_url=self.notification_url,
        )
        config: RequestConfiguration[Any] = RequestConfiguration()
        if self.include_security:
            config.headers.add("Prefer", "includesecuritywebhooks")
        try:
            created = await self.graph.subscriptions.post(body, request_configuration=config)
        except APIError as exc:
            raise from_api_error(exc) from exc
        if created is None or not created.id or created.expiration_date_time is None:
            raise RuntimeError("Graph created a subscription but returned no id or expiration")
        sub = Subscription(created.id, self.drive_id, format_time(created.expiration_date_time),
                           self._state_hash, self.notification_url,
                           created.lifecycle_notification_url or self.notification_url, self.include_security)
        self.store.save_subscription(sub)
        log.info("subscription %s created on drive %s, expires %s", sub.id, self.drive_id, sub.expiration)
        return sub

    async def renew(self, sub: Subscription) -> Subscription:
        """Extend ``sub`` to now + lifetime; a 404 (expired or deleted) re-creates it."""
        body = GraphSubscription(expiration_date_time=self.now() + self.lifetime)
        try:
            updated = await self.graph.subscriptions.by_subscription_id(sub.id).patch(body)
        except APIError as exc:
            error = from_api_error(exc)
            if not isinstance(error, NotFound):
                raise error from exc
            log.warning("subscription %s is gone (expired or deleted); creating a new one", sub.id)
            self.store.delete_subscription(sub.id)
            return await self.create()
        if updated is None or updated.expiration_date_time is None:
            raise RuntimeError("Graph renewed a subscription but returned no expiration")
        renewed = dataclasses.replace(sub, expiration=format_time(updated.expiration_date_time))
        self.store.save_subscription(renewed)
        log.info("subscription %s renewed, expires %s", sub.id, renewed.expiration)
        return renewed

    async def delete(self, sub: Subscription) -> None:
        """Delete ``sub`` on the tenant (already gone is fine) and forget it."""
        try:
            await self.graph.subscriptions.by_subscription_id(sub.id).delete()
        except APIError as exc:
            error = from_api_error(exc)
            if not isinstance(error, NotFound):
                raise error from exc
        self.store.delete_subscription(sub.id)
