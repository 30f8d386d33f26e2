"""Errors of the connector boundary: what can go wrong talking to Entra ID, Graph and SharePoint.

The SDKs (msal, msgraph-sdk/kiota, office365-rest-python-client) each raise their own types;
connectors translate them here, chaining the original (``raise … from exc``), so the rest of the
bot never imports an SDK to catch an error. Messages never contain tokens or secrets, and
service messages are cut to one line.

Tree::

    ConnectorError
    ├── AuthError                  the token endpoint refused us, or the credential is unusable
    │   └── CredentialNotSupported     e.g. a client secret for SharePoint REST
    ├── TransportError             no HTTP answer: DNS, TLS verification, connection reset, timeout
    └── ServiceError               Graph or SharePoint answered with an error status
        ├── ClientError (4xx)
        │   ├── Unauthorized (401)     token missing, expired or for the wrong audience
        │   ├── Forbidden (403)        valid token, no permission (no Sites.Selected grant, …)
        │   ├── NotFound (404)
        │   ├── Conflict (409)
        │   ├── PreconditionFailed (412)   eTag mismatch
        │   └── Throttled (429)        ``retry_after`` seconds, when the service said
        └── ServerError (5xx)          503 may also carry ``retry_after``

``ServiceError.from_status`` picks the class; ``connectors.graph`` and ``connectors.sharepoint``
build it from their SDK's exception.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AuthError",
    "ClientError",
    "Conflict",
    "ConnectorError",
    "CredentialNotSupported",
    "Forbidden",
    "NotFound",
    "PreconditionFailed",
    "ServerError",
    "ServiceError",
    "Throttled",
    "TransportError",
    "Unauthorized",
    "one_line",
]

#: Service messages can be long (stack traces in 500s, HTML error pages); keep reports readable.
MESSAGE_MAX = 300


def one_line(text: str, limit: int = MESSAGE_MAX) -> str:
    """The first line of ``text``, stripped and cut to ``limit`` characters."""
    line = (text or "").strip().splitlines()[0].strip() if (text or "").strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


class ConnectorError(Exception):
    """Talking to Microsoft 365 failed. ``str()`` is one line, safe to log and to show."""


class AuthError(ConnectorError):
    """No token: the token endpoint refused the request, or our credential cannot be used.

    ``error`` and ``description`` are the OAuth error and the first line of its description
    (``AADSTS700016: Application with identifier … was not found``); ``hint`` names the setting
    that most likely needs changing.
    """

    def __init__(self, message: str, *, error: str = "", description: str = "", hint: str = "",
                 correlation_id: str = "") -> None:
        super().__init__(message + (f" — {hint}" if hint else ""))
        self.error = error
        self.description = description
        self.hint = hint
        self.correlation_id = correlation_id


class CredentialNotSupported(AuthError):
    """The configured credential is not accepted for this resource (a secret for SharePoint REST)."""


class TransportError(ConnectorError):
    """The request got no HTTP answer: name resolution, TLS verification, connection or timeout."""


class ServiceError(ConnectorError):
    """Graph or SharePoint answered with an error status."""

    status: ClassVar[int | None] = None

    def __init__(self, status: int, code: str, message: str, *, surface: str, request_id: str = "",
                 retry_after: float | None = None) -> None:
        self.status_code = status
        self.code = code
        self.message = one_line(message)
        self.surface = surface
        self.request_id = request_id
        #: seconds the service asked us to wait (Retry-After), if it said
        self.retry_after = retry_after
        text = f"{surface} {status}" + (f" {code}" if code else "")
        text += f": {self.message}" if self.message else ""
        super().__init__(text)

    @staticmethod
    def from_status(status: int, code: str, message: str, *, surface: str, request_id: str = "",
                    retry_after: float | None = None) -> ServiceError:
        """The most specific class for ``status``."""
        cls: type[ServiceError] = _BY_STATUS.get(status) or (ServerError if status >= 500 else ClientError)
        return cls(status, code, message, surface=surface, request_id=request_id, retry_after=retry_after)


class ClientError(ServiceError):
    """A 4xx answer: the request is wrong for the resource's current state or our permissions."""


class Unauthorized(ClientError):
    status = 401


class Forbidden(ClientError):
    status = 403


class NotFound(ClientError):
    status = 404


class Conflict(ClientError):
    status = 409


class PreconditionFailed(ClientError):
    status = 412


class Throttled(ClientError):
    status = 429


class ServerError(ServiceError):
    """A 5xx answer: the service failed; usually worth retrying later."""


_BY_STATUS: dict[int, type[ServiceError]] = {
    cls.status: cls for cls in (Unauthorized, Forbidden, NotFound, Conflict, PreconditionFailed, Throttled)
    if cls.status is not None
}


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header given as seconds; HTTP dates are left to the SDK (None)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
