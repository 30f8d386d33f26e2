"""The Microsoft Graph client: msgraph-sdk on our own httpx client, authenticated by our msal app.

Where it sits: the only module that imports ``msgraph``/``kiota_*``. It builds the SDK client
from settings and translates the SDK's errors into ``connectors.errors``.

How the client is wired (anchors-permissions §1.4, each point checked against the SDK):

* ``httpx.AsyncClient(base_url=graph_url, verify=<context for ca_path>, trust_env=False)`` — our
  CA, our timeouts, and no environment variable can swap the trust store.
* ``GraphClientFactory.create_with_default_middleware(client=…)`` — a client passed to
  ``GraphRequestAdapter`` gets no middleware on its own, so the factory adds the default chain
  (retry, redirect, URL replace, user agent, headers inspection, telemetry).
* A kiota ``AccessTokenProvider`` over our ``Authenticator`` with
  ``AllowedHostsValidator([graph host])``: a token is attached only to requests for the Graph
  host (bare host names; a ``https://`` prefix is rejected by kiota), never to, say, a
  pre-authenticated download URL on another host.
* ``adapter.base_url = graph_url`` — REQUIRED: without it httpx's base URL gains a trailing
  "/" and every request goes to ``…/v1.0//drives/…``.

Retries — ONE layer: ``connectors.retrying.RetryingTransport`` under the middleware chain
(``Retry-After`` as a floor for ALL requests of the client through a shared pause gate, jittered
back-off for 5xx/resets/timeouts, a concurrency limit), configured from ``settings.http``. The
SDK's ``RetryHandler`` stays in the chain but is switched off (``should_retry=False``): it sleeps
per request, so concurrent requests would keep going out during a Retry-After. Nothing above
the transport retries Graph calls.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Generator, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx
from kiota_abstractions.api_error import APIError
from kiota_abstractions.authentication import (
    AccessTokenProvider,
    AllowedHostsValidator,
    BaseBearerTokenAuthenticationProvider,
)
from kiota_http.middleware.options import RetryHandlerOption
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.graph_request_adapter import GraphRequestAdapter
from msgraph.graph_service_client import GraphServiceClient
from msgraph_core import GraphClientFactory

from config.settings import Settings
from connectors.auth import Authenticator, Resource, ssl_verify
from connectors.errors import ServiceError, parse_retry_after
from connectors.retrying import (
    RetryingTransport,
    RetryPolicy,
    SyncPauseGate,
    SyncRetryingTransport,
    retry_delay,
    server_wait,
)

__all__ = ["GraphBearer", "GraphTokenProvider", "SyncGraphClient", "build_graph_client", "build_http_client",
           "build_sync_graph_client", "from_api_error"]

log = logging.getLogger(__name__)

#: Graph's JSON batching takes at most 20 requests per ``POST /$batch`` (graph-api.md §2.16).
MAX_BATCH = 20
#: The Graph throttling pause of the synchronous clients (one per process, like SharePoint's).
SYNC_GRAPH_GATE = SyncPauseGate()


class GraphTokenProvider(AccessTokenProvider):
    """kiota's token hook: Graph tokens from our authenticator, for the Graph host only."""

    def __init__(self, authenticator: Authenticator, graph_host: str) -> None:
        self._auth = authenticator
        self._hosts = AllowedHostsValidator([graph_host])

    async def get_authorization_token(self, uri: str,
                                      additional_authentication_context: dict[str, Any] | None = None) -> str:
        if not self._hosts.is_url_host_valid(uri):
            return ""  # kiota then sends the request without an Authorization header
        token = self._auth.cached(Resource.GRAPH)
        if token is None:
            # msal is synchronous (requests); only a refresh leaves the event loop.
            token = await asyncio.to_thread(self._auth.token, Resource.GRAPH)
        return token.value

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return self._hosts


def build_http_client(settings: Settings) -> httpx.AsyncClient:
    """The httpx client under the Graph SDK, with the SDK's middleware and our retry policy."""
    http = settings.http
    # With a transport given, httpx ignores the client's ``verify``: the CA goes on the transport.
    inner = httpx.AsyncHTTPTransport(verify=ssl_verify(settings.endpoints.ca_path),
                                     trust_env=settings.endpoints.ca_path is None)
    policy = RetryPolicy(max_retries=http.max_retries, base_delay=http.retry_delay_seconds,
                         max_concurrency=http.max_concurrency)
    client = httpx.AsyncClient(
        base_url=settings.endpoints.graph_url,
        transport=RetryingTransport(inner, policy),
        # With our own CA, nothing in the environment may change trust or route around it.
        trust_env=settings.endpoints.ca_path is None,
        timeout=httpx.Timeout(http.timeout_seconds, connect=http.connect_timeout_seconds),
    )
    # The SDK's RetryHandler is off: RetryingTransport is the one retry layer (module docstring).
    retry = RetryHandlerOption(delay=http.retry_delay_seconds, max_retries=0, should_retry=False)
    wrapped: httpx.AsyncClient = GraphClientFactory.create_with_default_middleware(
        client=client, options={RetryHandlerOption.get_key(): retry})
    return wrapped


class GraphBearer(httpx.Auth):
    """A Graph token from our authenticator on every request (cached by it until near expiry)."""

    def __init__(self, authenticator: Authenticator) -> None:
        self._auth = authenticator

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = "Bearer " + self._auth.access_token(Resource.GRAPH)
        yield request


class SyncGraphClient(httpx.Client):
    """A synchronous httpx client for Graph that knows its retry policy and pause gate, so that work
    the transport cannot see (the sub-requests of a ``$batch``) follows the same policy."""

    def __init__(self, *, policy: RetryPolicy, gate: SyncPauseGate, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.policy, self.gate = policy, gate

    def batch_get(self, urls: Sequence[str]) -> list[Any | None]:
        """GET many Graph URLs (relative to ``/v1.0``) in ``$batch`` posts of 20: one request where a
        loop would send twenty. Returns the bodies in the order of ``urls``; ``None`` for a 404.

        The envelope goes through the retry layer like any request, but Graph throttles each
        sub-request on its own (a sub-status 429/503 with its own ``Retry-After``; the SDKs do not
        retry those). So throttled and transient sub-requests are sent again, in a smaller batch,
        after the same decision the retry layer makes (``retry_delay``: Retry-After as the floor,
        bounded back-off); a Retry-After also closes the pause gate, so no other request of the
        process leaves inside it. Any other failure raises our ``ServiceError``.
        """
        rng = random.Random()  # noqa: S311 - jitter, not security
        results: list[Any | None] = [None] * len(urls)
        for start in range(0, len(urls), MAX_BATCH):
            pending = {str(i): url for i, url in enumerate(urls[start:start + MAX_BATCH], start)}
            attempt = 0
            while pending:
                attempt += 1
                backoff = self._send_batch(pending, results, attempt, rng)
                if pending:
                    log.info("$batch: %d sub-request(s) to send again", len(pending))
                    self.gate.wait()
                    time.sleep(backoff)
        return results

    def _send_batch(self, pending: dict[str, str], results: list[Any | None], attempt: int,
                    rng: random.Random) -> float:
        """One ``POST /$batch``: answered sub-requests leave ``pending``; returns the back-off to wait
        before sending the rest again (their Retry-After already closed the gate)."""
        body = {"requests": [{"id": key, "method": "GET", "url": url} for key, url in pending.items()]}
        envelope = self.post("/$batch", json=body)
        if envelope.status_code >= 400:
            raise ServiceError.from_status(envelope.status_code, "", envelope.text[:300], surface="graph",
                                           request_id=envelope.headers.get("request-id", ""))
        backoff = 0.0
        for sub in envelope.json().get("responses") or []:
            key, status = str(sub.get("id")), int(sub.get("status") or 0)
            if key not in pending:
                continue
            if 200 <= status < 300 or status == 404:
                results[int(key)] = sub.get("body") if status != 404 else None
                del pending[key]
                continue
            headers = {str(k).lower(): str(v) for k, v in (sub.get("headers") or {}).items()}
            retry_after = server_wait(status, headers)
            delay = retry_delay("GET", status, retry_after, attempt=attempt, policy=self.policy, rng=rng)
            if delay is None:
                error = (sub.get("body") or {}).get("error") or {}
                raise ServiceError.from_status(status, str(error.get("code") or ""),
                                               str(error.get("message") or f"GET {pending[key]} failed"),
                                               surface="graph", retry_after=retry_after)
            if retry_after is not None:
                self.gate.pause(delay)
            else:
                backoff = max(backoff, delay)
        return backoff


def build_sync_graph_client(settings: Settings, authenticator: Authenticator) -> SyncGraphClient:
    """A small synchronous httpx client for Graph (our CA, our token, the one retry policy) for the
    SharePoint-side connectors, which run in threads beside office365's synchronous context."""
    http = settings.http
    ca_path = settings.endpoints.ca_path
    inner = httpx.HTTPTransport(verify=ssl_verify(ca_path), trust_env=ca_path is None)
    policy = RetryPolicy(max_retries=http.max_retries, base_delay=http.retry_delay_seconds,
                         max_concurrency=http.max_concurrency)
    return SyncGraphClient(
        policy=policy, gate=SYNC_GRAPH_GATE, base_url=settings.endpoints.graph_url,
        transport=SyncRetryingTransport(inner, policy, gate=SYNC_GRAPH_GATE), trust_env=ca_path is None,
        auth=GraphBearer(authenticator),
        timeout=httpx.Timeout(http.timeout_seconds, connect=http.connect_timeout_seconds))


def build_graph_client(settings: Settings, authenticator: Authenticator) -> GraphServiceClient:
    """A ``GraphServiceClient`` for ``settings.endpoints.graph_url``, authenticated as the bot."""
    authenticator.require_accepted(Resource.GRAPH)
    graph_url = settings.endpoints.graph_url
    provider = GraphTokenProvider(authenticator, urlsplit(graph_url).hostname or "")
    adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(provider),
                                  client=build_http_client(settings))
    adapter.base_url = graph_url  # REQUIRED, see the module docstring
    return GraphServiceClient(request_adapter=adapter)


def from_api_error(exc: APIError) -> ServiceError:
    """Our ``ServiceError`` for an SDK error (``ODataError`` carries Graph's code and message)."""
    status = exc.response_status_code or 0
    headers = {k.lower(): v for k, v in (exc.response_headers or {}).items()}
    code, message = "", exc.message or ""
    if isinstance(exc, ODataError) and exc.error is not None:
        code = exc.error.code or ""
        message = exc.error.message or message
    return ServiceError.from_status(status, code, message, surface="graph",
                                    request_id=str(headers.get("request-id", "")),
                                    retry_after=parse_retry_after(headers.get("retry-after")))

