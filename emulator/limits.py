"""Statistics, SharePoint's throttling model and fault injection for the local tenant.

``Tenant.dispatch`` (emulator/app.py) drives all three for every request; the admin API
(emulator/admin.py) reads and changes them at run time.

* ``Stats`` counts every request by method, route and status, the resource units charged per
  app, and requests that arrived while the app was inside a ``Retry-After`` window it had been
  given (a well-behaved client sends none: "pause all requests while waiting out a
  Retry-After", anchors-sync-notify.md §0).
* ``Throttle`` charges SharePoint's published resource units (1 single-item read or delta with
  a token; 2 multi-item reads, delta without a token and writes; 5 any permission call) against
  a per-app budget over a sliding minute (default 1,200 RU, the 0–1,000 licence tier). Over
  budget → 429 with a whole-second ``Retry-After`` until enough units leave the window.
  Throttled calls still count against the budget (so a client that ignores ``Retry-After`` is
  throttled for longer), as SharePoint documents. From 80 % of the budget on,
  ``RateLimit-Limit/Remaining/Reset`` headers are added, also on the 429 itself (graph-api.md
  §2.17; examples ``sp-ratelimit-near-limit`` and ``sp-ratelimit-throttled`` in graph-examples).
* ``Faults`` are injected through the admin API: latency, 429/503 with ``Retry-After`` (integer
  or fractional, as Graph's published ``2.128``), connection resets and delta-token expiry, by
  route name or path pattern, with a probability and/or a count.

Every time source is an injectable ``clock`` so the unit tests run on plain values.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import json
import math
import random
import re
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from emulator.http import HttpError, Req, Resp

if TYPE_CHECKING:
    from emulator.app import Send, Tenant

Clock = Callable[[], float]


def client_hint(req: Req) -> str:
    """The app a request claims to come from (``appid``/``azp`` of its bearer token, unverified).

    Used only to attribute statistics and ``Retry-After`` windows before authentication has
    run (injected faults answer before it); authorization always uses the verified token.
    """
    header = req.headers.get("authorization") or ""
    if not header.lower().startswith("bearer "):
        return ""
    parts = header[7:].strip().split(".")
    if len(parts) != 3:
        return ""
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError):
        return ""
    if not isinstance(payload, dict):
        return ""
    return str(payload.get("appid") or payload.get("azp") or "")


class Stats:
    """Request counters for the admin API (``GET /_admin/stats``)."""

    def __init__(self, clock: Clock = time.time) -> None:
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        self.started = self.clock()
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.ru_by_app: Counter[str] = Counter()
        self.requests_by_app: Counter[str] = Counter()
        self.in_retry_after_window: Counter[str] = Counter()
        self.total_seconds = 0.0

    def record(self, method: str, route: str, status: int, ru: int, client_id: str,  # noqa: PLR0917
               seconds: float) -> None:
        self.requests[(method, route, status)] += 1
        if client_id:
            self.ru_by_app[client_id] += ru
            self.requests_by_app[client_id] += 1
        self.total_seconds += seconds

    def snapshot(self) -> dict[str, Any]:
        by_status: Counter[int] = Counter()
        by_method: Counter[str] = Counter()
        by_route: Counter[str] = Counter()
        for (method, route, status), n in self.requests.items():
            by_status[status] += n
            by_method[method] += n
            by_route[route] += n
        total = sum(self.requests.values())
        return {
            "since": self.started,
            "seconds": round(self.clock() - self.started, 3),
            "total_requests": total,
            "total_resource_units": sum(self.ru_by_app.values()),
            "mean_handler_ms": round(1000 * self.total_seconds / total, 3) if total else 0.0,
            "requests": [{"method": m, "route": r, "status": s, "count": n}
                         for (m, r, s), n in sorted(self.requests.items())],
            "by_status": {str(k): v for k, v in sorted(by_status.items())},
            "by_method": dict(sorted(by_method.items())),
            "by_route": dict(sorted(by_route.items())),
            "resource_units_by_app": dict(self.ru_by_app),
            "requests_by_app": dict(self.requests_by_app),
            "requests_inside_retry_after": dict(self.in_retry_after_window),
            "total_requests_inside_retry_after": sum(self.in_retry_after_window.values()),
        }


class Throttle:
    """SharePoint's per-app resource-unit budget over a sliding minute (see the module docstring)."""

    WINDOW = 60.0
    NEAR_LIMIT = 0.8  # RateLimit-* headers from 80 % of the 1-minute budget on
    #: Arrivals this close to the end of a window are not counted as early (clock granularity
    #: and a client rounding its sleep up to the millisecond).
    GRACE = 0.005

    def __init__(self, ru_per_minute: int, stats: Stats | None = None, *,
                 clock: Clock = time.monotonic) -> None:
        if ru_per_minute < 1:
            raise ValueError("ru_per_minute must be a positive integer")
        self.budget = ru_per_minute
        self.stats = stats
        self.clock = clock
        self.spent: dict[str, deque[tuple[float, int]]] = {}
        self._used: Counter[str] = Counter()
        #: End of the latest Retry-After window given to each client (throttling or injected fault).
        self.blocked_until: dict[str, float] = {}
        #: End of the latest window given by the budget itself (drives RateLimit-Reset on 429s).
        self.throttled_until: dict[str, float] = {}
        self.throttled: Counter[str] = Counter()

    def set_budget(self, ru_per_minute: int) -> None:
        """Change the budget at run time (benchmarks); charges already in the window stay."""
        if ru_per_minute < 1:
            raise ValueError("ru_per_minute must be a positive integer")
        self.budget = ru_per_minute

    def reset(self) -> None:
        """Forget every charge and window (a fresh minute for every app)."""
        self.spent.clear()
        self._used.clear()
        self.blocked_until.clear()
        self.throttled_until.clear()
        self.throttled.clear()

    def _window(self, client: str, now: float) -> deque[tuple[float, int]]:
        spent = self.spent.setdefault(client, deque())
        while spent and spent[0][0] <= now - self.WINDOW:
            _, units = spent.popleft()
            self._used[client] -= units
        return spent

    def used(self, client: str) -> int:
        self._window(client, self.clock())
        return self._used[client]

    def note_arrival(self, client: str) -> bool:
        """Count a request that arrives while its app was told to wait (it should not exist)."""
        until = self.blocked_until.get(client)
        if not client or until is None or self.clock() >= until - self.GRACE:
            return False
        if self.stats is not None:
            self.stats.in_retry_after_window[client] += 1
        return True

    def note_retry_after(self, client: str, answer: Resp | HttpError) -> None:
        """Remember a ``Retry-After`` (seconds, possibly fractional) given to ``client``."""
        headers = answer.headers
        value = next((v for k, v in headers if k.lower() == "retry-after"), None)
        if not client or value is None:
            return
        try:
            seconds = float(value)
        except ValueError:
            return  # an HTTP-date; the tenant never sends one
        if math.isfinite(seconds) and seconds > 0:
            until = self.clock() + seconds
            self.blocked_until[client] = max(self.blocked_until.get(client, until), until)

    def charge(self, client: str, ru: int) -> Resp | None:
        """Charge ``ru`` or answer 429 when the minute's budget would be exceeded.

        Throttled requests still count against the budget, as SharePoint documents; the
        ``Retry-After`` (whole seconds, as SharePoint sends it) is the time until enough of the
        oldest charges have left the window for the same request to fit, its own throttled
        charge included. A single request dearer than the whole budget passes on an empty
        window rather than being refused forever.
        """
        if not ru:
            return None
        now = self.clock()
        spent = self._window(client, now)
        used = self._used[client]
        if used == 0 or used + ru <= self.budget:
            spent.append((now, ru))
            self._used[client] += ru
            return None
        spent.append((now, ru))
        self._used[client] += ru
        need, freed, wait = self._used[client] + ru - self.budget, 0, self.WINDOW
        for at, units in spent:
            freed += units
            if freed >= need:
                wait = at + self.WINDOW - now
                break
        retry_after = max(1, math.ceil(wait))
        self.throttled[client] += 1
        self.throttled_until[client] = now + retry_after
        resp = Resp(429, b"", [("retry-after", str(retry_after))])
        self.note_retry_after(client, resp)
        resp.headers.extend(self.rate_limit_headers(client))
        return resp

    def rate_limit_headers(self, client: str) -> list[tuple[str, str]]:
        """``RateLimit-*`` (IETF draft-03, as SharePoint sends them) once the app is at ≥ 80 %."""
        if not client:
            return []
        now = self.clock()
        spent = self._window(client, now)
        used = self._used[client]
        throttled_for = self.throttled_until.get(client, now) - now
        if throttled_for > 0:
            # Published example: 429 with Retry-After 31, Remaining 0, Reset 31.
            return [("ratelimit-limit", str(self.budget)), ("ratelimit-remaining", "0"),
                    ("ratelimit-reset", str(math.ceil(throttled_for)))]
        if used < self.NEAR_LIMIT * self.budget:
            return []
        reset = max(0, math.ceil(spent[0][0] + self.WINDOW - now)) if spent else 0
        return [("ratelimit-limit", str(self.budget)),
                ("ratelimit-remaining", str(max(0, self.budget - used))), ("ratelimit-reset", str(reset))]

    def snapshot(self) -> dict[str, Any]:
        now = self.clock()
        apps = {}
        for client in list(self.spent):
            used = self.used(client)
            apps[client] = {
                "used": used, "remaining": max(0, self.budget - used), "throttled": self.throttled[client],
                "retry_after_remaining": round(max(0.0, self.blocked_until.get(client, now) - now), 3),
            }
        return {"ru_per_minute": self.budget, "window_seconds": self.WINDOW, "apps": apps}


# ---------------------------------------------------------------------------- faults

_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_FIELDS = ("kind", "route", "path", "method", "probability", "count", "retry_after", "latency_ms")
_SECONDS = re.compile(r"\d{1,6}(\.\d{1,6})?")


class FaultSpecError(ValueError):
    """An invalid fault rule; ``field`` names the offending property for the 400 answer."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclasses.dataclass
class Fault:
    """One injected fault rule (see ``POST /_admin/faults``)."""

    id: int
    kind: str  # latency | 429 | 503 | reset | delta_expiry
    route: str | None = None  # route name, exact or a regex fully matching it (case-insensitive)
    path: str | None = None  # regex searched in the decoded request path (case-insensitive)
    method: str | None = None
    probability: float = 1.0
    count: int | None = None  # fire at most this many times (None: unlimited)
    retry_after: str | None = "1"  # for 429/503: seconds, may be fractional ("2.128")
    latency_ms: int = 0
    fired: int = 0
    hit_path: str = ""  # the path of the request it fired on (set on the copy ``pick`` returns)

    def matches(self, route: str, path: str, method: str) -> bool:
        if self.count is not None and self.fired >= self.count:
            return False
        if self.method and self.method.upper() != method.upper():
            return False
        if self.route and not (self.route.lower() == route.lower()
                               or re.fullmatch(self.route, route, re.IGNORECASE)):
            return False
        return not (self.path and not re.search(self.path, path, re.IGNORECASE))

    @property
    def exhausted(self) -> bool:
        return self.count is not None and self.fired >= self.count

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        del data["hit_path"]
        data["exhausted"] = self.exhausted
        if self.kind not in ("429", "503"):
            data.pop("retry_after")
        if self.kind != "latency":
            data.pop("latency_ms")
        return data


def _number(spec: Mapping[str, Any], key: str) -> float | None:
    value = spec.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise FaultSpecError(key, f"must be a number, not {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise FaultSpecError(key, f"must be a number, not {value!r}") from None
    if not math.isfinite(number):
        raise FaultSpecError(key, "must be finite")
    return number


def _integer(spec: Mapping[str, Any], key: str, minimum: int) -> int | None:
    number = _number(spec, key)
    if number is None:
        return None
    if number != int(number) or number < minimum:
        raise FaultSpecError(key, f"must be an integer ≥ {minimum}, not {spec[key]!r}")
    return int(number)


def _regex(spec: Mapping[str, Any], key: str) -> str | None:
    value = spec.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise FaultSpecError(key, "must be a string (a regular expression)")
    try:
        re.compile(value)
    except re.error as exc:
        raise FaultSpecError(key, f"is not a valid regular expression: {exc}") from exc
    return value


class Faults:
    """The injected fault rules; ``Tenant.dispatch`` asks ``pick`` for every non-admin request."""

    KINDS = ("latency", "429", "503", "reset", "delta_expiry")

    def __init__(self, seed: int | None = None) -> None:
        self.rules: list[Fault] = []
        self._next = 1
        self._random = random.Random(seed)  # noqa: S311 - fault dice, not security

    def parse(self, spec: Mapping[str, Any]) -> Fault:
        """Validate one rule without adding it; ``FaultSpecError`` names the bad field."""
        if not isinstance(spec, Mapping):
            raise FaultSpecError("rules", "each rule must be a JSON object")
        for key in spec:
            if key not in _FIELDS:
                raise FaultSpecError(str(key), f"is not a fault property (known: {', '.join(_FIELDS)})")
        kind = spec.get("kind")
        kind = str(kind) if isinstance(kind, int | str) and not isinstance(kind, bool) else None
        if kind not in self.KINDS:
            raise FaultSpecError("kind", f"must be one of {', '.join(self.KINDS)}, not {spec.get('kind')!r}")
        probability = _number(spec, "probability")
        if probability is not None and not 0.0 <= probability <= 1.0:
            raise FaultSpecError("probability", "must be between 0 and 1")
        method = spec.get("method")
        if method is not None and (not isinstance(method, str) or method.upper() not in _METHODS):
            raise FaultSpecError("method", f"must be one of {', '.join(_METHODS)}, not {method!r}")
        retry_after = spec.get("retry_after")
        if retry_after is not None:
            text = str(retry_after).strip() if not isinstance(retry_after, bool) else ""
            if not isinstance(retry_after, int | float | str) or not _SECONDS.fullmatch(text):
                raise FaultSpecError("retry_after", f"must be a non-negative number of seconds such as 1 or "
                                                    f"\"2.128\", not {retry_after!r}")
            retry_after = text
        latency_ms = _integer(spec, "latency_ms", 0)
        if kind == "latency" and not latency_ms:
            raise FaultSpecError("latency_ms", "is required (> 0) for a latency fault")
        if latency_ms is not None and latency_ms > 600_000:
            raise FaultSpecError("latency_ms", "must be at most 600000 (ten minutes)")
        return Fault(0, kind, _regex(spec, "route"), _regex(spec, "path"), method.upper() if method else None,
                     1.0 if probability is None else probability, _integer(spec, "count", 1),
                     retry_after if retry_after is not None else "1", latency_ms or 0)

    def add(self, spec: Mapping[str, Any]) -> Fault:
        return self.add_many([spec])[0]

    def add_many(self, specs: list[Mapping[str, Any]]) -> list[Fault]:
        """Add rules all or nothing (a bad one adds none)."""
        parsed = []
        for index, spec in enumerate(specs):
            try:
                parsed.append(self.parse(spec))
            except FaultSpecError as exc:
                if len(specs) == 1:
                    raise
                raise FaultSpecError(f"rules[{index}].{exc.field}", str(exc).split(": ", 1)[1]) from exc
        for fault in parsed:
            fault.id = self._next
            self._next += 1
            self.rules.append(fault)
        return parsed

    def clear(self) -> None:
        self.rules.clear()

    def pick(self, route: str, path: str, method: str) -> Fault | None:
        """The first rule that matches and rolls its probability, as a copy naming the path hit."""
        for fault in self.rules:
            if fault.matches(route, path, method) and (fault.probability >= 1.0
                                                       or self._random.random() < fault.probability):
                fault.fired += 1
                return dataclasses.replace(fault, hit_path=path)
        return None

    async def act(self, fault: Fault, tenant: Tenant, send: Send | None) -> HttpError | None:
        """Carry out a fault: an error to answer instead of the real response, or None to go on.

        The error is rendered by the tenant in the called surface's envelope (Graph JSON,
        SharePoint OData, OAuth). For ``reset`` the connection is aborted (uvicorn's
        transport) and None is returned too; the caller tells the two apart by ``fault.kind``.
        """
        if fault.kind == "latency":
            await asyncio.sleep(fault.latency_ms / 1000)
            return None
        if fault.kind == "429":
            # What SharePoint-backed Graph calls answer when throttled (activityLimitReached /
            # throttledRequest; graph-api.md §2.17); SharePoint REST renders it as OData.
            return HttpError(429, "activityLimitReached", "The request has been throttled",
                             inner_code="throttledRequest",
                             headers=[("retry-after", fault.retry_after or "1")])
        if fault.kind == "503":
            return HttpError(503, "serviceNotAvailable", "The service is temporarily unavailable. "
                             "Retry after the number of seconds given in Retry-After.",
                             headers=[("retry-after", fault.retry_after or "1")])
        if fault.kind == "delta_expiry":
            for site in tenant.state.sites():
                for drive in tenant.state.drives(site.id):
                    tenant.state.bump_delta_generation(drive.id)
            return None
        # reset: abort the TCP connection under the request, as a dropped connection looks to a client
        transport = getattr(getattr(send, "__self__", None), "transport", None)
        if transport is not None:
            transport.abort()
            return None
        # No connection of its own (a $batch sub-request): the closest a sub-response can get.
        return HttpError(502, "generalException", "The connection to the backend was reset.",
                         headers=[("connection", "close")])
