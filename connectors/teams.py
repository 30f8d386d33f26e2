"""Teams transport: Workflows webhooks ("Post to a channel when a webhook request is received").

Where it sits: implements ``bot.notices.ports.Notifier`` for the drain of ``bot.notices.outbox``.
One secret URL per channel (``TeamsSettings.webhooks``); the body is exactly the envelope
Workflows' template loops over (anchors-sync-notify §5)::

    {"type":"message","attachments":[{"contentType":"application/vnd.microsoft.card.adaptive","content":CARD}]}

* **202 Accepted** is success — and only that the flow was triggered: the run posts the card
  later, and an invalid card still "succeeds" (§3), which is why cards are schema-validated first.
* **Size** is checked here, before sending: more than 28 KB (28 × 1024 bytes, the whole body)
  raises ``MessageTooLarge`` and nothing is sent ("Request Entity too large" otherwise, §3).
* **Retries**: the client is built on ``connectors.retrying.RetryingTransport``, the project's one
  retry layer: 429 and 503 are retried on POST too (they mean "not processed"), Retry-After is the
  floor; 500/502/504 are NOT retried inside the request, because a POST may have been carried out —
  the outbox backs off and tries again on a later drain, at-least-once.
* **No idempotency**: a Workflows webhook has no idempotency header and no way to ask whether a
  run posted, so ``idempotent = False``; the drain handles the crash window (bot.notices.outbox).

The webhook URL is a secret (it carries the ``sig=`` signature); it never appears in errors or logs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import SecretStr

from bot.notices.ports import Delivery
from connectors.errors import ConnectorError, ServiceError, TransportError, one_line
from connectors.retrying import PauseGate, RetryingTransport, RetryPolicy, Sleep, retry_after_seconds

__all__ = ["MAX_MESSAGE_BYTES", "MessageTooLarge", "UnknownChannel", "WorkflowsNotifier", "build_workflows_notifier"]

MAX_MESSAGE_BYTES = 28 * 1024
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"


class MessageTooLarge(ConnectorError):
    """The message is over the transport's limit; it was not sent (never retried)."""


class UnknownChannel(ConnectorError):
    """No webhook is configured for the channel (CARTIF_TEAMS__WEBHOOKS)."""


def workflows_body(card: Mapping[str, Any]) -> bytes:
    """The exact request body for one card."""
    payload = {"type": "message", "attachments": [{"contentType": CARD_CONTENT_TYPE, "content": card}]}
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


class WorkflowsNotifier:
    """``Notifier`` over Workflows webhooks; ``client`` should sit on ``RetryingTransport``."""

    idempotent = False
    max_message_bytes = MAX_MESSAGE_BYTES

    def __init__(self, webhooks: Mapping[str, SecretStr | str], client: httpx.AsyncClient) -> None:
        self._webhooks = {name: (url.get_secret_value() if isinstance(url, SecretStr) else url)
                          for name, url in webhooks.items()}
        self.client = client
        #: POSTs sent (attempts, retries included, are counted by the RetryingTransport)
        self.posts = 0

    def channels(self) -> frozenset[str]:
        return frozenset(self._webhooks)

    async def post(self, channel: str, card: dict[str, Any], *, key: str) -> Delivery:
        url = self._webhooks.get(channel)
        if url is None:
            raise UnknownChannel(f"no Workflows webhook for the Teams channel {channel!r}: add it to "
                                 "CARTIF_TEAMS__WEBHOOKS")
        body = workflows_body(card)
        if len(body) > self.max_message_bytes:
            raise MessageTooLarge(f"the notice for {channel!r} is {len(body)} bytes; Workflows accepts "
                                  f"{self.max_message_bytes} (nothing was sent)")
        self.posts += 1
        try:
            response = await self.client.post(url, content=body, headers={"content-type": "application/json"})
        except httpx.HTTPError as exc:
            # The URL is a secret: name the channel, never the request.
            raise TransportError(f"teams: posting to {channel!r} failed: {type(exc).__name__}") from None
        if response.status_code in (200, 202):
            return Delivery(channel, response.status_code, response.headers.get("x-ms-workflow-run-id"))
        code, message = _error(response)
        raise ServiceError.from_status(response.status_code, code, f"{channel}: {message}", surface="teams",
                                       retry_after=_retry_after(response))

    async def aclose(self) -> None:
        await self.client.aclose()


def _error(response: httpx.Response) -> tuple[str, str]:
    try:
        data = response.json()
    except ValueError:
        return "", one_line(response.text)
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("code", "")), one_line(str(error.get("message", "")))
    return "", one_line(response.text)


def _retry_after(response: httpx.Response) -> float | None:
    return retry_after_seconds(response.headers.get("retry-after"))


def build_workflows_notifier(settings: Any, *, sleep: Sleep | None = None, gate: PauseGate | None = None,
                             transport: httpx.AsyncBaseTransport | None = None) -> WorkflowsNotifier:
    """A notifier from ``settings.teams.webhooks`` on the one retry layer (``settings.http`` policy).

    ``sleep`` and ``gate`` make time injectable (tests simulate a 10-minute outage without waiting).
    """
    from connectors.auth import ssl_verify

    http = settings.http
    inner = transport or httpx.AsyncHTTPTransport(verify=ssl_verify(settings.endpoints.ca_path))
    policy = RetryPolicy(max_retries=http.max_retries, base_delay=http.retry_delay_seconds,
                         max_concurrency=http.max_concurrency)
    kwargs: dict[str, Any] = {}
    if sleep is not None:
        kwargs["sleep"] = sleep
    retrying = RetryingTransport(inner, policy, gate=gate, api="teams", **kwargs)
    client = httpx.AsyncClient(transport=retrying, trust_env=False,
                               timeout=httpx.Timeout(http.timeout_seconds, connect=http.connect_timeout_seconds))
    return WorkflowsNotifier(settings.teams.webhooks, client)
