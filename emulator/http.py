"""Request/response primitives and the router shared by every surface of the local tenant.

The tenant is a plain ASGI app (``emulator.app``) rather than a framework app because Graph
addressing (``root:/a/b:/children``, ``delta(token='…')``, ``$batch`` sub-requests dispatched
internally) fits a small regex router better than path templates. Each surface module
(``entra``, ``graph_drive``, ``graph_misc``, ``sharepoint``, ``teams``, ``admin``) exposes
``register(router)`` and adds ``Route``s; handlers take a ``Ctx`` and return a ``Resp``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote

if TYPE_CHECKING:
    from emulator.app import Tenant
    from emulator.state import App


class Headers:
    """Case-insensitive, single-valued request headers."""

    def __init__(self, items: Mapping[str, str] | list[tuple[str, str]] | None = None) -> None:
        self._d: dict[str, str] = {}
        pairs = items.items() if isinstance(items, Mapping) else (items or [])
        for k, v in pairs:
            self._d[k.lower()] = v

    def get(self, key: str, default: str | None = None) -> str | None:
        return self._d.get(key.lower(), default)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._d

    def items(self) -> list[tuple[str, str]]:
        return list(self._d.items())


@dataclasses.dataclass
class Req:
    """One HTTP request as the tenant sees it (also built for ``$batch`` sub-requests).

    ``path`` is percent-decoded once (so msgraph-sdk's ``root%3A%2FA%3A`` reads ``root:/A:``);
    ``raw_path`` keeps the bytes as sent.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: Headers
    body: bytes
    base_url: str  # scheme://host:port of the tenant as the client addressed it
    raw_path: str = ""
    client_host: str = ""

    def json(self) -> Any:
        """The body as JSON; a malformed body is 400 ``invalidRequest`` naming the problem."""
        if not self.body:
            return {}
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HttpError(400, "invalidRequest", f"The request body is not valid JSON: {exc}") from exc

    def q(self, name: str, default: str | None = None) -> str | None:
        """A query parameter; OData system options match with or without ``$``."""
        for key in (name, name.lstrip("$"), "$" + name.lstrip("$")):
            if key in self.query:
                return self.query[key]
        lowered = {k.lower(): v for k, v in self.query.items()}
        return lowered.get(name.lower(), lowered.get(name.lstrip("$").lower(), default))


@dataclasses.dataclass
class Resp:
    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


def json_resp(data: Any, status: int = 200, headers: list[tuple[str, str]] | None = None,
              content_type: str = "application/json;odata.metadata=minimal;odata.streaming=true;"
                                  "IEEE754Compatible=false;charset=utf-8") -> Resp:
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    return Resp(status, body, [("content-type", content_type), *(headers or [])])


def empty(status: int = 204, headers: list[tuple[str, str]] | None = None) -> Resp:
    return Resp(status, b"", headers or [])


class HttpError(Exception):
    """An error answer; each surface renders it in its own envelope (Graph, OData v3, OAuth)."""

    def __init__(self, status: int, code: str, message: str, *, inner_code: str | None = None,
                 headers: list[tuple[str, str]] | None = None, sp_code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.inner_code = inner_code
        self.headers = headers or []
        self.sp_code = sp_code  # SharePoint's "<HRESULT>, <.NET exception>" code


@dataclasses.dataclass(frozen=True)
class Caller:
    """Who is calling: the app from a verified access token, and what the token grants."""

    app: App
    audience: str  # "graph" or "sharepoint"
    roles: frozenset[str]
    claims: Mapping[str, Any]

    @property
    def client_id(self) -> str:
        return self.app.client_id


@dataclasses.dataclass
class Ctx:
    """What a handler gets: the request, the regex groups of its route, the caller, the tenant."""

    req: Req
    params: dict[str, str]
    tenant: Tenant
    route: Route
    caller: Caller | None = None

    @property
    def state(self) -> Any:
        return self.tenant.state

    @property
    def by(self) -> str:
        """The display name recorded as createdBy/modifiedBy for this call."""
        return self.caller.app.display_name if self.caller else "System Account"


Handler = Callable[[Ctx], Awaitable[Resp]]
Cost = int | Callable[[Ctx], int]


@dataclasses.dataclass(frozen=True)
class Route:
    """One endpoint.

    ``surface`` picks authentication and the error envelope: ``graph`` and ``sharepoint``
    need a bearer token with that audience; ``entra``, ``teams`` and ``admin`` take none.
    ``cost`` is SharePoint's resource units for the call (an int or a function of the request,
    e.g. delta costs 1 with a token and 2 without); ``None`` charges nothing.
    """

    method: str
    pattern: re.Pattern[str]
    handler: Handler
    name: str
    surface: str
    cost: Cost | None = None


class Router:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, pattern: str, handler: Handler, *, name: str, surface: str,
            cost: Cost | None = None) -> None:
        """Register ``handler``; ``pattern`` is a full-match regex over the decoded path, case-insensitive."""
        self.routes.append(Route(method.upper(), re.compile(pattern, re.IGNORECASE), handler, name, surface, cost))

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """The route for ``method path``, its groups, and whether the path matched another method."""
        path_matched = False
        for route in self.routes:
            m = route.pattern.fullmatch(path)
            if m is None:
                continue
            if route.method in (method, "*"):
                return route, {k: v for k, v in m.groupdict().items() if v is not None}, True
            path_matched = True
        return None, {}, path_matched


def parse_query(query_string: str) -> dict[str, str]:
    return dict(parse_qsl(query_string, keep_blank_values=True))


@dataclasses.dataclass(frozen=True)
class ODataArg:
    """One OData v3 method argument: ``name`` lower-cased (None when positional); ``quoted`` for a
    string or ``guid'…'`` literal (so ``@alias`` is only an alias when it is not quoted)."""

    name: str | None
    value: str
    quoted: bool


def parse_odata_args(text: str) -> list[ODataArg]:
    """OData v3 method arguments: ``a=1,b='x'`` or positional ``'x',true``; ``''`` escapes a quote.

    Names are lower-cased because SharePoint (and Graph's function parameters) match them
    case-insensitively; ``guid'…'`` literals yield the bare GUID.
    """
    out: list[ODataArg] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " ,":
            i += 1
        if i >= n:
            break
        m = re.match(r"(@?[A-Za-z_][\w.]*)\s*=\s*", text[i:])
        name: str | None = None
        if m:
            name = m.group(1).lower()
            i += m.end()
        if i < n and text[i] == "'":
            i += 1
            buf: list[str] = []
            while i < n:
                if text[i] == "'" and i + 1 < n and text[i + 1] == "'":
                    buf.append("'")
                    i += 2
                elif text[i] == "'":
                    i += 1
                    break
                else:
                    buf.append(text[i])
                    i += 1
            out.append(ODataArg(name, "".join(buf), True))
        else:
            j = i
            while j < n and text[j] != ",":
                j += 1
            raw = text[i:j].strip()
            i = j
            g = re.fullmatch(r"guid'(.*)'", raw, re.IGNORECASE)
            out.append(ODataArg(name, g.group(1) if g else raw, bool(g)))
    return out


def odata_args(text: str) -> dict[str, str]:
    """``parse_odata_args`` as a name → value mapping (a lone positional value under ``""``)."""
    return {arg.name or "": arg.value for arg in parse_odata_args(text)}


def url(base: str, path: str) -> str:
    return base.rstrip("/") + quote(path, safe="/:@!$&'()*+,;=-._~%")
