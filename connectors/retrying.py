"""The one retry layer for Graph: an httpx transport with a shared pause gate and a concurrency limit.

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
import time
from collections.abc import Awaitable, Callable

import httpx

__all__ = ["MAX_BACKOFF", "MAX_RETRY_AFTER", "PauseGate", "RetryPolicy", "RetryingTransport", "retry_after_seconds"]

log = logging.getLogger(__name__)

#: Longest back-off after a 5xx/reset/timeout without a Retry-After (seconds).
MAX_BACKOFF = 60.0
#: A Retry-After this long (seconds) is not waited out inside one request: the error goes up and
#: the cycle runs again later. Same cut-off as the Graph SDK's RetryHandler (MAX_DELAY).
MAX_RETRY_AFTER = 180.0
#: Statuses that mean "not processed, come back later" on any method.
THROTTLED = frozenset({429, 503})
#: Statuses retried on idempotent methods only (the request may or may not have been applied).
TRANSIENT = frozenset({500, 502, 504})
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


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
                 rng: random.Random | None = None) -> None:
        self.inner = inner
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
                retry_after = retry_after_seconds(response.headers.get("retry-after"))
                if status in THROTTLED and retry_after is not None:
                    # Close the gate for everyone, even when this request will not be retried.
                    self.gate.pause(min(retry_after, MAX_RETRY_AFTER))
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
            await self._sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")  # pragma: no cover

    async def aclose(self) -> None:
        await self.inner.aclose()
