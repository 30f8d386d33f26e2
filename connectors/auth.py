"""App-only authentication: one msal app per process, a token per resource, and the trusted CA.

Where it sits: ``Authenticator`` is created once from the settings and given to
``connectors.graph`` (a kiota token provider / azure-core credential) and
``connectors.sharepoint`` (a token callable). Nothing else talks to Entra ID.

* **One msal ConfidentialClientApplication per (authority, client, credential, CA)** for the
  life of the process, kept in an ``AppRegistry`` (anchors-permissions §2.2): msal's token cache
  lives in that object, and building one costs an OpenID discovery request.
* **Credentials**: a PEM file with certificate and key (passed as ``private_key`` +
  ``public_certificate`` so msal signs with PS256 and sends the SHA-256 thumbprint ``x5t#S256``),
  a PKCS#12 file (``private_key_pfx_path``), or a client secret. A secret works for Graph only;
  SharePoint REST rejects app-only tokens obtained with one (anchors §2.1), so we refuse early
  with ``CredentialNotSupported`` instead of letting SharePoint answer 401 later.
* **Tokens**: Graph (``https://graph.microsoft.com/.default``) and SharePoint (``https://{host}/.default``)
  are two resources, two tokens. msal caches them and refreshes 5 minutes before expiry; in front
  of it we keep the last token per resource in memory with the same margin, so a request costs a
  dict lookup and not a call into msal (which takes locks and scans its cache).
* **TLS**: with ``endpoints.ca_path`` set, every HTTP client we build trusts exactly that bundle
  and ignores the environment (``trust_env=False``): otherwise ``REQUESTS_CA_BUNDLE`` silently
  overrides a session's ``verify`` (anchors §2.4, container gotcha). Without it, the public CA
  bundle and the environment (proxies) apply as usual.
* **Retries**: none here. msal honours a 429's Retry-After by refusing early; a failed token
  request fails the cycle, and the scheduler runs the next one.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import re
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msal
import requests
from azure.core.credentials import AccessToken, AccessTokenInfo, TokenRequestOptions
from cryptography.hazmat.primitives.serialization import load_pem_private_key, pkcs12

from config.settings import Settings
from connectors.errors import AuthError, CredentialNotSupported, TransportError, one_line

__all__ = [
    "REFRESH_MARGIN",
    "AppRegistry",
    "Authenticator",
    "Resource",
    "Token",
    "new_requests_session",
    "ssl_verify",
]

#: Seconds before expiry a token counts as expired: msal's own margin (5 min), so that a token
#: handed out is still valid for any request that starts now and runs for a while.
REFRESH_MARGIN = 300

#: Hosts of Microsoft's own authorities; for these msal's instance discovery stays on.
MICROSOFT_AUTHORITY_HOSTS = frozenset({
    "login.microsoftonline.com", "login.microsoft.com", "login.windows.net", "sts.windows.net",
    "login.microsoftonline.us", "login.chinacloudapi.cn", "login.partner.microsoftonline.cn",
})


class Resource(enum.Enum):
    """The two APIs the bot gets tokens for."""

    GRAPH = "graph"
    SHAREPOINT = "sharepoint"


@dataclasses.dataclass(frozen=True)
class Token:
    """An access token for one resource."""

    resource: Resource
    value: str = dataclasses.field(repr=False)
    #: expiry, seconds since the epoch
    expires_on: float
    #: msal's ``token_source`` for the call that produced it: "identity_provider" or "cache"
    source: str

    def fresh(self, now: float) -> bool:
        return self.expires_on - now > REFRESH_MARGIN


# ---------------------------------------------------------------------------------------------- TLS
def ssl_verify(ca_path: Path | None) -> ssl.SSLContext | bool:
    """What to give httpx as ``verify``: a context trusting only ``ca_path``, or the default (True)."""
    return ssl.create_default_context(cafile=str(ca_path)) if ca_path else True


def new_requests_session(ca_path: Path | None) -> requests.Session:
    """A ``requests.Session`` that trusts ``ca_path`` whatever the environment says.

    ``trust_env=False`` is what makes ``verify`` stick: with it on, requests lets
    ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` replace the session's ``verify``. It also turns off
    proxy variables and ``.netrc``, which a local tenant does not need.
    """
    session = requests.Session()
    if ca_path:
        session.trust_env = False
        session.verify = str(ca_path)
    return session


class _MsalHttpClient:
    """msal's ``http_client`` contract (``post``/``get``/``close``) over our session, with timeouts.

    requests has no session-wide timeout; without one a hung token endpoint hangs the bot.
    """

    def __init__(self, session: requests.Session, timeout: tuple[float, float]) -> None:
        self.session = session
        self.timeout = timeout

    def post(self, url: str, params: Any = None, data: Any = None, headers: Any = None,
             **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return self.session.post(url, params=params, data=data, headers=headers, **kwargs)

    def get(self, url: str, params: Any = None, headers: Any = None, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return self.session.get(url, params=params, headers=headers, **kwargs)

    def close(self) -> None:
        self.session.close()


# ---------------------------------------------------------------------------------------------- credentials
@dataclasses.dataclass(frozen=True)
class _Credential:
    kind: str  # "certificate" | "pfx" | "secret"
    msal_value: Any = dataclasses.field(repr=False)
    #: SHA-256 over the material, to tell credentials apart in the registry without keeping them twice
    fingerprint: str


_PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
_PEM_KEY = re.compile(r"-----BEGIN ((?:RSA |EC |ENCRYPTED )?PRIVATE KEY)-----.+?-----END \1-----", re.S)


def _load_credential(settings: Settings) -> _Credential:
    """The msal ``client_credential`` from the auth settings; a certificate wins over a secret."""
    auth = settings.auth
    passphrase = auth.certificate_passphrase.get_secret_value() if auth.certificate_passphrase else None
    if auth.certificate_path:
        variable = "CARTIF_AUTH__CERTIFICATE_PATH"
        try:
            text = auth.certificate_path.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise AuthError(f"{variable}: cannot read {auth.certificate_path} ({exc})") from exc
        certs, key = _PEM_CERT.findall(text), _PEM_KEY.search(text)
        if not certs:
            raise AuthError(f"{variable}: {auth.certificate_path} holds no PEM certificate "
                            "(-----BEGIN CERTIFICATE-----)")
        if key is None:
            raise AuthError(f"{variable}: {auth.certificate_path} holds no PEM private key; the file must "
                            "contain both the certificate and its key")
        try:  # load it once here so a wrong passphrase is reported as such, not deep inside msal
            load_pem_private_key(key.group(0).encode(), password=passphrase.encode() if passphrase else None)
        except (ValueError, TypeError) as exc:
            raise AuthError(f"{variable}: the private key in {auth.certificate_path} cannot be loaded "
                            f"({one_line(str(exc))}); check CARTIF_AUTH__CERTIFICATE_PASSPHRASE") from exc
        # public_certificate (not "thumbprint") so msal computes the SHA-256 thumbprint: x5t#S256 + PS256.
        value: dict[str, Any] = {"private_key": key.group(0), "public_certificate": certs[0]}
        if passphrase:
            value["passphrase"] = passphrase
        return _Credential("certificate", value, _digest(certs[0]))
    if auth.pfx_path:
        try:
            data = auth.pfx_path.read_bytes()
            pkcs12.load_key_and_certificates(data, passphrase.encode() if passphrase else None)
        except (OSError, ValueError, TypeError) as exc:
            raise AuthError(f"CARTIF_AUTH__PFX_PATH: {auth.pfx_path} cannot be loaded "
                            f"({one_line(str(exc))}); check the file and "
                            "CARTIF_AUTH__CERTIFICATE_PASSPHRASE") from exc
        pfx: dict[str, Any] = {"private_key_pfx_path": str(auth.pfx_path)}
        if passphrase:
            pfx["passphrase"] = passphrase
        return _Credential("pfx", pfx, _digest(data))
    if auth.client_secret:
        secret = auth.client_secret.get_secret_value()
        return _Credential("secret", secret, _digest(secret))
    raise AuthError("CARTIF_AUTH__CERTIFICATE_PATH: required — no certificate, PFX or client secret is set")


def _digest(material: str | bytes) -> str:
    return hashlib.sha256(material.encode() if isinstance(material, str) else material).hexdigest()


# ---------------------------------------------------------------------------------------------- registry
class AppRegistry:
    """The process's msal apps, one per (authority, client id, credential, CA bundle).

    The module-level ``DEFAULT_REGISTRY`` is what the bot uses; tests that need a cold msal
    cache pass their own.
    """

    def __init__(self) -> None:
        self._apps: dict[tuple[str, str, str, str], msal.ConfidentialClientApplication] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, str, str],
            create: Callable[[], msal.ConfidentialClientApplication]) -> msal.ConfidentialClientApplication:
        with self._lock:
            app = self._apps.get(key)
            if app is None:
                app = self._apps[key] = create()
            return app

    def __len__(self) -> int:
        return len(self._apps)


DEFAULT_REGISTRY = AppRegistry()


# ---------------------------------------------------------------------------------------------- tokens
#: AADSTS code → the setting most likely to be wrong.
_HINTS: dict[str, str] = {
    "AADSTS700016": "check CARTIF_AUTH__CLIENT_ID (no such app in this tenant)",
    "AADSTS90002": "check CARTIF_TENANT__ID / CARTIF_TENANT__AUTHORITY (no such tenant)",
    "AADSTS900023": "check CARTIF_TENANT__ID (not a valid tenant)",
    "AADSTS700027": "the certificate is not registered on the app: upload it, or check "
                    "CARTIF_AUTH__CERTIFICATE_PATH / CARTIF_AUTH__PFX_PATH",
    "AADSTS700021": "check CARTIF_AUTH__CLIENT_ID (the assertion was made for another app)",
    "AADSTS7000215": "check CARTIF_AUTH__CLIENT_SECRET (use the secret's value, not its ID)",
    "AADSTS7000222": "the client secret has expired: create a new one, set CARTIF_AUTH__CLIENT_SECRET",
    "AADSTS700024": "the machine's clock is off; the client assertion is outside its valid time",
}


class Authenticator:
    """Access tokens for Graph and SharePoint for the bot's app registration.

    Thread-safe. ``token()`` returns a cached token while it has more than ``REFRESH_MARGIN``
    seconds left, else asks msal (which serves from its cache or calls the token endpoint).
    """

    def __init__(self, settings: Settings, *, registry: AppRegistry | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._authority = settings.tenant.authority
        self._client_id = settings.auth.client_id
        self._scopes = {Resource.GRAPH: settings.endpoints.graph_scope,
                        Resource.SHAREPOINT: settings.endpoints.sharepoint_scope}
        self._ca_path = settings.endpoints.ca_path
        self._timeout = (settings.http.connect_timeout_seconds, settings.http.timeout_seconds)
        self._credential = _load_credential(settings)
        self._registry = registry if registry is not None else DEFAULT_REGISTRY
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[Resource, Token] = {}
        #: the session msal's requests go through (token endpoint, discovery); public so that
        #: callers can add hooks (logging, counting) at the transport seam
        self.http_session = new_requests_session(self._ca_path)
        self._app: msal.ConfidentialClientApplication | None = None

    @property
    def credential_kind(self) -> str:
        """"certificate", "pfx" or "secret"."""
        return self._credential.kind

    def scope(self, resource: Resource) -> str:
        return self._scopes[resource]

    def resource_for_scope(self, scope: str) -> Resource:
        for resource, known in self._scopes.items():
            if known.rstrip("/").lower() == scope.rstrip("/").lower():
                return resource
        raise AuthError(f"no configured resource has the scope {scope!r}; the bot requests "
                        f"{self._scopes[Resource.GRAPH]} and {self._scopes[Resource.SHAREPOINT]}")

    def require_accepted(self, resource: Resource) -> None:
        """Refuse a credential the resource does not accept: SharePoint REST and client secrets."""
        if resource is Resource.SHAREPOINT and self._credential.kind == "secret":
            raise CredentialNotSupported(
                "SharePoint REST rejects app-only tokens obtained with a client secret; it accepts "
                "certificates only", hint="set CARTIF_AUTH__CERTIFICATE_PATH (PEM with key) or "
                "CARTIF_AUTH__PFX_PATH and register that certificate on the app")

    def cached(self, resource: Resource) -> Token | None:
        """The in-memory token if it is still fresh; never blocks on the network."""
        token = self._tokens.get(resource)
        return token if token is not None and token.fresh(self._clock()) else None

    def token(self, resource: Resource) -> Token:
        """A fresh access token for ``resource``; raises ``AuthError`` or ``TransportError``."""
        self.require_accepted(resource)
        token = self.cached(resource)
        if token is not None:
            return token
        with self._lock:
            token = self.cached(resource)  # another thread may have refreshed it meanwhile
            if token is None:
                token = self._acquire(resource)
                self._tokens[resource] = token
            return token

    def access_token(self, resource: Resource) -> str:
        return self.token(resource).value

    def token_response(self, resource: Resource) -> dict[str, Any]:
        """An OAuth token response as office365's ``with_access_token`` expects it.

        ``expires_in`` is shortened by ``REFRESH_MARGIN`` so that office365, which caches the
        response until exactly ``expires_in``, comes back to us while the token is still valid.
        """
        token = self.token(resource)
        return {"access_token": token.value, "token_type": "Bearer",
                "expires_in": max(0, int(token.expires_on - self._clock()) - REFRESH_MARGIN)}

    def token_credential(self) -> _AzureCredential:
        """An azure-core ``TokenCredential`` (``get_token`` → ``AccessToken``) over this authenticator."""
        return _AzureCredential(self)

    def close(self) -> None:
        self.http_session.close()

    # ------------------------------------------------------------------------------------------ msal
    def _msal_app(self) -> msal.ConfidentialClientApplication:
        if self._app is None:
            key = (self._authority.lower(), self._client_id.lower(), self._credential.fingerprint,
                   str(self._ca_path or ""))
            self._app = self._registry.get(key, self._new_app)
        return self._app

    def _new_app(self) -> msal.ConfidentialClientApplication:
        host = (urlsplit(self._authority).hostname or "").lower()
        try:
            return msal.ConfidentialClientApplication(
                self._client_id,
                authority=self._authority,
                client_credential=self._credential.msal_value,
                # Instance discovery asks login.microsoftonline.com whether the authority is known;
                # for any other host (a sovereign cloud is known, a local tenant is not) skip it.
                instance_discovery=None if host in MICROSOFT_AUTHORITY_HOSTS else False,
                http_client=_MsalHttpClient(self.http_session, self._timeout),
            )
        except requests.RequestException as exc:
            raise _transport_error(f"cannot reach the authority {self._authority}", exc) from exc
        except ValueError as exc:
            raise AuthError(f"the authority {self._authority} cannot be used ({one_line(str(exc), 200)})",
                            hint="check CARTIF_TENANT__AUTHORITY and CARTIF_TENANT__ID") from exc

    def _acquire(self, resource: Resource) -> Token:
        app = self._msal_app()
        scope = self._scopes[resource]
        try:
            result = app.acquire_token_for_client(scopes=[scope])
        except requests.RequestException as exc:
            raise _transport_error(f"cannot reach the token endpoint of {self._authority}", exc) from exc
        except ValueError as exc:  # msal raises it for unusable credential material
            raise AuthError(f"msal refused the credential for {resource.value} ({one_line(str(exc), 200)})",
                            hint="check CARTIF_AUTH__CERTIFICATE_PATH / CARTIF_AUTH__PFX_PATH") from exc
        if not isinstance(result, dict) or "access_token" not in result:
            raise _token_error(resource, scope, result if isinstance(result, dict) else {})
        expires_in = float(result.get("expires_in") or 0)
        return Token(resource=resource, value=str(result["access_token"]),
                     expires_on=self._clock() + expires_in,
                     source=str(result.get("token_source") or "identity_provider"))


def _transport_error(what: str, exc: requests.RequestException) -> TransportError:
    if isinstance(exc, requests.exceptions.SSLError):
        return TransportError(f"{what}: TLS verification failed ({one_line(str(exc), 160)}); "
                              "check CARTIF_ENDPOINTS__CA_PATH")
    return TransportError(f"{what}: {type(exc).__name__} ({one_line(str(exc), 160)})")


def _token_error(resource: Resource, scope: str, result: dict[str, Any]) -> AuthError:
    error = str(result.get("error") or "unknown_error")
    description = one_line(str(result.get("error_description") or ""))
    match = re.match(r"(AADSTS\d+)", description)
    code = match.group(1) if match else ""
    hint = _HINTS.get(code, "")
    if code in ("AADSTS500011", "AADSTS1002012"):
        variable = f"CARTIF_ENDPOINTS__{resource.value.upper()}_SCOPE"
        hint = f"check {variable} (requested {scope})"
    return AuthError(f"token request for {resource.value} refused: {error}: {description}", error=error,
                     description=description, hint=hint,
                     correlation_id=str(result.get("correlation_id") or ""))


class _AzureCredential:
    """azure-core ``TokenCredential`` and ``SupportsTokenInfo`` for msgraph-sdk's default auth path."""

    def __init__(self, authenticator: Authenticator) -> None:
        self._auth = authenticator

    def get_token(self, *scopes: str, claims: str | None = None, tenant_id: str | None = None,
                  enable_cae: bool = False, **kwargs: Any) -> AccessToken:
        token = self._token(scopes)
        return AccessToken(token.value, int(token.expires_on))

    def get_token_info(self, *scopes: str, options: TokenRequestOptions | None = None) -> AccessTokenInfo:
        token = self._token(scopes)
        return AccessTokenInfo(token.value, int(token.expires_on),
                               refresh_on=int(token.expires_on - REFRESH_MARGIN))

    def _token(self, scopes: tuple[str, ...]) -> Token:
        if len(scopes) != 1:
            raise AuthError("exactly one RESOURCE/.default scope is needed for app-only tokens, "
                            f"got {list(scopes)}")
        return self._auth.token(self._auth.resource_for_scope(scopes[0]))

    def close(self) -> None:
        """Nothing to release: the authenticator outlives its credentials."""

    def __enter__(self) -> _AzureCredential:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
