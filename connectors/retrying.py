"""The one retry layer: Graph's httpx transport and SharePoint REST's requests adapter, one policy.

Where it sits: ``connectors.graph`` builds the SDK's httpx client on ``RetryingTransport``, below
kiota's middleware (auth, redirects, headers), and turns the SDK's own ``RetryHandler`` off, so a
request is retried exactly once per failure, here. Every Graph call of the process goes through
it: SDK request builders, ``$batch`` and the raw delta pages of ``connectors.graph_delta``.

Why a transport and not the SDK's RetryHandler or a tenacity decorator around calls:

* **Retry-After is a floor for the whole client.** Microsoft asks clients to "pause all requests
  while waiting out a Retry-After" (anchors-sync-notify §0, [G-scan]); the SDK's handler sleeps
  per request, so concurrent requests go on hammering. Here a 429/503 with ``Retry-After`` closes
  the ``PauseGate`` until then, and no request leaves while it is closed — retries included.
  Fractional values (Graph sends ``2.128``) are honoured as given.
* **5xx, resets and timeouts** get bounded exponential back-off with full jitter (base
  ``retry_delay_seconds``, doubling, capped at ``MAX_BACKOFF``); the SDK handler only knows
  429/503/504. Only idempotent methods are retried after a 500/502/504 or a transport error, since
  a POST may have been carried out; 429 and 503 mean "not processed" and are retried on any method.
* **A concurrency limit** (``max_concurrency``, default 4) bounds the requests in flight; waiting
  out a back-off does not hold a slot.
* **SharePoint's RateLimit headers.** From 80 % of its one-minute budget an app gets
  ``RateLimit-Limit/Remaining/Reset`` on every answer (graph-api.md §2.17). On a 429/503 we wait
  "the greater" of Retry-After and RateLimit-Reset, as Microsoft asks; and when Remaining falls to
  ``RATE_LIMIT_LOW_WATER`` of the limit, the gate closes until Reset *before* a 429 — throttled
  calls still count against the budget, and apps that keep getting them are blocked.

SharePoint REST (office365-rest-python-client, on ``requests``) gets the same policy through
``RetryingAdapter``, mounted on the session ``connectors.sharepoint`` hands to office365: the same
decisions (``retry_delay``), its own thread-safe pause gate, so a SharePoint 429 pauses every
SharePoint request of the process until its Retry-After has passed.

Counting: every transport here reports each response and each wait before a retry to
``OBSERVERS`` as a ``TransportEvent`` labelled with the API it talks to ("graph", "sharepoint",
"teams" — given when the transport is built), so the service's /metrics counts Graph, SharePoint
REST and the Teams webhooks in one place, whoever the caller is.

Attempts are logged as ``attempt #n/N`` with method and path. Retries are bounded
(``max_retries``); when they run out, the last response (or exception) goes up unchanged, and
the caller's error translation (``connectors.graph.from_api_error``) applies. Clock, sleep and
randomness are injectable so the unit tests run on plain values.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import logging
import math
import random
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, Protocol

import httpx
import requests
from requests.adapters import HTTPAdapter

__all__ = ["MAX_BACKOFF", "MAX_RETRY_AFTER", "OBSERVERS", "RATE_LIMIT_LOW_WATER", "Api", "PauseGate", "RetryPolicy",
           "RetryingAdapter", "RetryingTransport", "SyncPauseGate", "SyncRetryingTransport", "TransportEvent",
           "heed_answer", "rate_limit_hold", "retry_after_seconds", "retry_delay", "server_wait"]

log = logging.getLogger(__name__)

#: Longest back-off after a 5xx/reset/timeout without a Retry-After (seconds).
MAX_BACKOFF = 60.0
#: A Retry-After this long (seconds) is not waited out inside one request: the error goes up and
#: the cycle runs again later. Same cut-off as the Graph SDK's RetryHandler (MAX_DELAY).
MAX_RETRY_AFTER = 180.0
#: Hold every request when RateLimit-Remaining is down to this share of RateLimit-Limit: enough
#: room left for the requests already in flight (4 permission calls of 5 RU = 20 RU of 1,200).
RATE_LIMIT_LOW_WATER = 0.05
#: Statuses that mean "not processed, come back later" on any method.
THROTTLED = frozenset({429, 503})
#: Statuses retried on idempotent methods only (the request may or may not have been applied).
TRANSIENT = frozenset({500, 502, 504})
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]

#: Which service a transport talks to: the label of every ``TransportEvent`` it reports.
Api = Literal["graph", "sharepoint", "teams"]


@dataclasses.dataclass(frozen=True, slots=True)
class TransportEvent:
    """What one of the retrying transports just saw, for the observers (the service's /metrics).

    ``kind`` "response": a response arrived (every attempt, retries included; ``seconds`` 0).
    ``kind`` "wait": the transport is about to wait ``seconds`` and retry; ``status`` is the
    response's (0 after a transport error) and ``reason`` says whose delay it is: "retry_after"
    (the service's Retry-After) or "backoff" (our jittered exponential back-off).
    ``kind`` "hold": a successful answer said the budget is nearly spent (``RateLimit-*``); every
    request is held ``seconds`` (``reason`` "rate_limit"); nothing is retried.
    """

    api: Api
    kind: Literal["response", "wait", "hold"]
    method: str
    status: int
    seconds: float = 0.0
    reason: Literal["", "retry_after", "backoff", "rate_limit"] = ""


Observer = Callable[[TransportEvent], None]
#: The one counting hook: every transport of this module reports here, labelled by ``api``, so a
#: new caller is counted without doing anything. The service's /metrics registers here
#: (bot/service/metrics.py).
OBSERVERS: list[Observer] = []


def _observe(event: TransportEvent) -> None:
    for observer in OBSERVERS:
        try:
            observer(event)
        except Exception:  # metrics must never break a request
            log.debug("transport observer failed", exc_info=True)


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How many times and how long to retry; built from ``settings.http``."""

    #: retries after the first attempt
    max_retries: int = 3
    #: first back-off (seconds) after a 5xx/reset/timeout; doubles per retry, jittered
    base_delay: float = 3.0
    #: requests in flight at once
    max_concurrency: int = 4

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Full-jitter exponential back-off for the ``retry``-th retry (1-based)."""
        ceiling = min(MAX_BACKOFF, self.base_delay * (2 ** (retry - 1)))
        return rng.uniform(ceiling / 2, ceiling)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds (fractional too) or an HTTP date."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _number(headers: Mapping[str, str], name: str) -> float | None:
    text = headers.get(name)
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def server_wait(status: int, headers: Mapping[str, str]) -> float | None:
    """How long the service asked us to wait: Retry-After, and on a 429/503 "the greater" of it and
    RateLimit-Reset (graph-api.md §2.17); None when it asked nothing."""
    retry_after = retry_after_seconds(headers.get("retry-after"))
    if status not in THROTTLED:
        return retry_after
    asked = [v for v in (retry_after, _number(headers, "ratelimit-reset")) if v is not None and v >= 0]
    return max(asked) if asked else None


def rate_limit_hold(headers: Mapping[str, str]) -> float:
    """Seconds to hold every request because the budget is about to run out (0: none).

    SharePoint sends ``RateLimit-*`` only from 80 % of the minute's budget; once ``Remaining`` is at
    or below ``RATE_LIMIT_LOW_WATER`` of ``Limit``, wait ``Reset`` (when room frees up) rather than
    spend the rest and be answered 429.
    """
    limit, remaining = _number(headers, "ratelimit-limit"), _number(headers, "ratelimit-remaining")
    reset = _number(headers, "ratelimit-reset")
    if limit is None or remaining is None or reset is None or limit <= 0:
        return 0.0
    if remaining > limit * RATE_LIMIT_LOW_WATER:
        return 0.0
    return min(max(reset, 0.0), MAX_RETRY_AFTER)


class _Gate(Protocol):
    def pause(self, seconds: float) -> None: ...


def heed_answer(gate: _Gate, api: Api, method: str, status: int, headers: Mapping[str, str]) -> float | None:
    """What every transport does with an answer's waiting headers, in one place: close ``gate`` for
    a 429/503's wait (``server_wait``) or for a nearly spent budget (``rate_limit_hold``, reported as
    a "hold" event); returns the wait the service asked for, the floor of a retry."""
    retry_after = server_wait(status, headers)
    if status in THROTTLED and retry_after is not None:
        # Close the gate for everyone, even when this request will not be retried.
        gate.pause(min(retry_after, MAX_RETRY_AFTER))
    elif hold := rate_limit_hold(headers):
        gate.pause(hold)
        _observe(TransportEvent(api, "hold", method, status, hold, "rate_limit"))
    return retry_after


class PauseGate:
    """Closed until a deadline: every request waits for it right before it leaves.

    ``pause(seconds)`` only ever extends the deadline (the longest Retry-After wins).
    """

    def __init__(self, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        self._clock = clock
        self._sleep = sleep
        self.until = 0.0

    def pause(self, seconds: float) -> None:
        self.until = max(self.until, self._clock() + seconds)

    def remaining(self) -> float:
        return max(0.0, self.until - self._clock())

    async def wait(self) -> None:
        # Loop: another response may extend the pause while we sleep.
        while (left := self.remaining()) > 0:
            await self._sleep(left)


class RetryingTransport(httpx.AsyncBaseTransport):
    """Wraps the real transport: concurrency limit, pause gate, bounded retries (see module docstring)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, policy: RetryPolicy | None = None, *,
                 gate: PauseGate | None = None, sleep: Sleep = asyncio.sleep,
                 rng: random.Random | None = None, api: Api = "graph") -> None:
        self.inner = inner
        self.api: Api = api
        self.policy = policy or RetryPolicy()
        self.gate = gate or PauseGate(sleep=sleep)
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._slots = asyncio.Semaphore(self.policy.max_concurrency)
        #: counters for benchmarks and the CLI summary
        self.attempts = 0
        self.retries = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        policy = self.policy
        total = policy.max_retries + 1
        for attempt in range(1, total + 1):
            retry_after: float | None = None
            async with self._slots:
                # No await between the gate opening and the request leaving: nothing can close
                # the gate in between on this event loop.
                await self.gate.wait()
                self.attempts += 1
                try:
                    response = await self.inner.handle_async_request(request)
                except (httpx.NetworkError, httpx.TimeoutException, httpx.RemoteProtocolError) as exc:
                    if attempt == total or request.method not in IDEMPOTENT:
                        raise
                    delay = policy.backoff(attempt, self._rng)
                    log.warning("attempt #%d/%d %s %s failed (%s); retrying in %.2fs", attempt, total,
                                request.method, request.url.path, type(exc).__name__, delay)
                    response = None
            if response is not None:
                status = response.status_code
                _observe(TransportEvent(self.api, "response", request.method, status))
                retry_after = heed_answer(self.gate, self.api, request.method, status, response.headers)
                retryable = status in THROTTLED or (status in TRANSIENT and request.method in IDEMPOTENT)
                if (not retryable or attempt == total
                        or (retry_after is not None and retry_after >= MAX_RETRY_AFTER)):
                    return response
                await response.aread()
                await response.aclose()
                # Retry-After is the floor; without one, jittered back-off. The gate adds any
                # longer pause another response asked for.
                delay = retry_after if retry_after is not None else policy.backoff(attempt, self._rng)
                log.info("attempt #%d/%d %s %s got %d; retrying in %.2fs", attempt, total, request.method,
                         request.url.path, status, delay)
            self.retries += 1
            _observe(TransportEvent(self.api, "wait", request.method,
                                    response.status_code if response is not None else 0, delay,
                                    "backoff" if retry_after is None else "retry_after"))
            await self._sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")  # pragma: no cover

    async def aclose(self) -> None:
        await self.inner.aclose()


# ---------------------------------------------------------------------------------------------- SharePoint REST
def retry_delay(method: str, status: int, retry_after: float | None, *, attempt: int, policy: RetryPolicy,
                rng: random.Random) -> float | None:
    """Seconds to wait before retrying a response, or None to hand it up (the policy in one place).

    429/503 are retried on any method, 500/502/504 on idempotent ones; Retry-After is the floor,
    and one of ``MAX_RETRY_AFTER`` or more is not waited out inside a request.
    """
    retryable = status in THROTTLED or (status in TRANSIENT and method in IDEMPOTENT)
    if not retryable or attempt > policy.max_retries:
        return None
    if retry_after is not None:
        return None if retry_after >= MAX_RETRY_AFTER else retry_after
    return policy.backoff(attempt, rng)


class SyncPauseGate:
    """``PauseGate`` for threads: closed until a deadline that only ever moves later."""

    def __init__(self, clock: Clock = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self.until = 0.0

    def pause(self, seconds: float) -> None:
        with self._lock:
            self.until = max(self.until, self._clock() + seconds)

    def remaining(self) -> float:
        with self._lock:
            return max(0.0, self.until - self._clock())

    def wait(self) -> None:
        while (left := self.remaining()) > 0:
            self._sleep(left)


class RetryingAdapter(HTTPAdapter):
    """The Graph transport's policy for ``requests`` (office365-rest-python-client's transport).

    Concurrency is the caller's (office365 runs one query at a time per context); the gate is
    shared by every session built with the same ``gate``.
    """

    def __init__(self, policy: RetryPolicy | None = None, *, gate: SyncPauseGate | None = None,
                 sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None,
                 api: Api = "sharepoint") -> None:
        super().__init__()
        self.api: Api = api
        self.policy = policy or RetryPolicy()
        self.gate = gate or SyncPauseGate(sleep=sleep)
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self.attempts = 0
        self.retries = 0

    def send(self, request: requests.PreparedRequest, stream: bool = False,  # noqa: PLR0917 - requests' signature
             timeout: float | tuple[float, float] | tuple[float, None] | None = None,
             verify: bool | str = True, cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
             proxies: Mapping[str, str] | None = None) -> requests.Response:
        method = (request.method or "GET").upper()
        path = (request.path_url or "").split("?", 1)[0]
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            self.gate.wait()
            self.attempts += 1
            try:
                response = super().send(request, stream=stream, timeout=timeout, verify=verify, cert=cert,
                                        proxies=proxies)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt > self.policy.max_retries or method not in IDEMPOTENT:
                    raise
                delay = self.policy.backoff(attempt, self._rng)
                log.warning("attempt #%d %s %s failed (%s); retrying in %.2fs", attempt, method, path,
                            type(exc).__name__, delay)
                status = 0
            else:
                status = response.status_code
                _observe(TransportEvent(self.api, "response", method, status))
                retry_after = heed_answer(self.gate, self.api, method, status, response.headers)
                wait = retry_delay(method, status, retry_after, attempt=attempt, policy=self.policy, rng=self._rng)
                if wait is None:
                    return response
                response.close()
                delay = wait
                log.info("attempt #%d %s %s got %d; retrying in %.2fs", attempt, method, path, status, delay)
            self.retries += 1
            _observe(TransportEvent(self.api, "wait", method, status, delay,
                                    "backoff" if retry_after is None else "retry_after"))
            self._sleep(delay)


class SyncRetryingTransport(httpx.BaseTransport):
    """The same policy for synchronous httpx clients (the small Graph clients of the SharePoint-side
    connectors: sharing links, archive uploads); shares a ``SyncPauseGate`` like ``RetryingAdapter``."""

    def __init__(self, inner: httpx.BaseTransport, policy: RetryPolicy | None = None, *,
                 gate: SyncPauseGate | None = None, sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None, api: Api = "graph") -> None:
        self.inner = inner
        self.api: Api = api
        self.policy = policy or RetryPolicy()
        self.gate = gate or SyncPauseGate(sleep=sleep)
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self.attempts = 0
        self.retries = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            self.gate.wait()
            self.attempts += 1
            try:
                response = self.inner.handle_request(request)
            except (httpx.NetworkError, httpx.TimeoutException, httpx.RemoteProtocolError) as exc:
                if attempt > self.policy.max_retries or request.method not in IDEMPOTENT:
                    raise
                delay = self.policy.backoff(attempt, self._rng)
                log.warning("attempt #%d %s %s failed (%s); retrying in %.2fs", attempt, request.method,
                            request.url.path, type(exc).__name__, delay)
                status = 0
            else:
                status = response.status_code
                _observe(TransportEvent(self.api, "response", request.method, status))
                retry_after = heed_answer(self.gate, self.api, request.method, status, response.headers)
                wait = retry_delay(request.method, status, retry_after, attempt=attempt, policy=self.policy,
                                   rng=self._rng)
                if wait is None:
                    return response
                response.read()
                response.close()
                delay = wait
                log.info("attempt #%d %s %s got %d; retrying in %.2fs", attempt, request.method,
                         request.url.path, status, delay)
            self.retries += 1
            _observe(TransportEvent(self.api, "wait", request.method, status, delay,
                                    "backoff" if retry_after is None else "retry_after"))
            self._sleep(delay)

    def close(self) -> None:
        self.inner.close()


def mount_retrying(session: requests.Session, policy: RetryPolicy, gate: SyncPauseGate | None = None,
                   **kwargs: Any) -> RetryingAdapter:
    """Mount a ``RetryingAdapter`` on ``session`` for https:// and http:// and return it."""
    adapter = RetryingAdapter(policy, gate=gate, **kwargs)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return adapter
