"""Who may trigger a sync: a static bearer token from the settings, or an Entra ID access token.

Where it sits: ``POST /api/sync`` (``bot.service.api``) calls ``TriggerAuth.check`` with the
``Authorization`` header; nothing else of the service needs a caller.

* **Static token** (``service.api_token``): compared in constant time (both sides hashed first,
  so neither length nor content leaks through timing).
* **Entra ID access token**: an RS256 JWT validated against the tenant's signing keys (JWKS,
  found through ``{authority}/v2.0/.well-known/openid-configuration`` and cached; an unknown
  ``kid`` refetches them at most once a minute, which is how key rollover is followed), with
  ``aud`` = ``service.app_id_uri`` (or the bot's client id: v2 tokens carry that), ``iss`` = the
  tenant's v1 (``https://sts.windows.net/{tid}/``) or v2 issuer, ``exp``/``nbf`` checked, and the
  app role ``service.required_role`` in ``roles``.

A missing or invalid credential is ``Unauthorized`` (401 with ``WWW-Authenticate: Bearer``); a
valid token without the role is ``Forbidden`` (403). Neither message repeats the credential.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import time
from typing import Any

import httpx
import jwt

from config.settings import Settings
from connectors.auth import ssl_verify

__all__ = ["Caller", "Forbidden", "TriggerAuth", "Unauthorized"]

log = logging.getLogger(__name__)

#: An unknown kid refetches the JWKS at most this often (seconds): enough to follow a key
#: rollover at once, not enough for forged kids to make the service hammer the tenant.
JWKS_REFETCH_SECONDS = 60.0
#: Clock skew tolerated on exp/nbf (seconds), as Microsoft's token validation libraries allow.
LEEWAY = 300


class Unauthorized(Exception):
    """No valid credential (401)."""


class Forbidden(Exception):
    """A valid token without the required app role (403)."""


@dataclasses.dataclass(frozen=True)
class Caller:
    """Who triggered: ``kind`` "token" (static) or "entra" (with the app id and roles)."""

    kind: str
    app_id: str | None = None
    roles: tuple[str, ...] = ()


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8")).digest()


class TriggerAuth:
    """Checks ``Authorization`` headers (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        service = settings.service
        self._static = _digest(service.api_token.get_secret_value()) if service.api_token else None
        self.audiences = [a for a in (service.app_id_uri, settings.auth.client_id) if a]
        self.entra_enabled = bool(service.app_id_uri)
        self.required_role = service.required_role
        self.authority = settings.tenant.authority
        self._verify = ssl_verify(settings.endpoints.ca_path)
        self._trust_env = settings.endpoints.ca_path is None
        self._keys: dict[str, Any] = {}
        self._issuers: list[str] = []
        self._fetched_at = -JWKS_REFETCH_SECONDS

    async def check(self, authorization: str | None) -> Caller:
        if not authorization or not authorization[:7].lower() == "bearer ":
            raise Unauthorized("a bearer token is required")
        credential = authorization[7:].strip()
        if self._static is not None and hmac.compare_digest(_digest(credential), self._static):
            return Caller("token")
        if not self.entra_enabled or credential.count(".") != 2:
            raise Unauthorized("invalid token")
        claims = await self._validate(credential)
        roles = claims.get("roles") or []
        if not isinstance(roles, list) or self.required_role not in roles:
            raise Forbidden(f"the token lacks the app role {self.required_role}")
        return Caller("entra", str(claims.get("appid") or claims.get("azp") or ""), tuple(str(r) for r in roles))

    async def _validate(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("invalid token") from None
        if header.get("alg") != "RS256":
            raise Unauthorized("invalid token (RS256 expected)")
        kid = str(header.get("kid") or "")
        key = self._keys.get(kid)
        if key is None and time.monotonic() - self._fetched_at >= JWKS_REFETCH_SECONDS:
            await self._refresh()
            key = self._keys.get(kid)
        if key is None:
            raise Unauthorized("invalid token (unknown signing key)")
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=["RS256"], audience=self.audiences, issuer=self._issuers,
                leeway=LEEWAY, options={"require": ["exp", "iss", "aud"]})
        except jwt.ExpiredSignatureError:
            raise Unauthorized("invalid token (expired)") from None
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid token ({type(exc).__name__})") from None
        return claims

    async def _refresh(self) -> None:
        self._fetched_at = time.monotonic()
        discovery = f"{self.authority}/v2.0/.well-known/openid-configuration"
        try:
            async with httpx.AsyncClient(verify=self._verify, trust_env=self._trust_env, timeout=10) as client:
                config = (await client.get(discovery)).raise_for_status().json()
                jwks = (await client.get(str(config["jwks_uri"]))).raise_for_status().json()
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            log.warning("cannot fetch the tenant's signing keys (%s); Entra ID tokens are refused meanwhile",
                        type(exc).__name__)
            return
        keys: dict[str, Any] = {}
        for entry in jwks.get("keys", []):
            if entry.get("kty") == "RSA" and entry.get("kid"):
                keys[str(entry["kid"])] = jwt.PyJWK.from_json(json.dumps(entry), algorithm="RS256").key
        self._keys = keys
        v2 = str(config.get("issuer", ""))
        tenant_id = v2.rstrip("/").removesuffix("/v2.0").rsplit("/", 1)[-1]
        self._issuers = [v2, f"https://sts.windows.net/{tenant_id}/"]
        log.info("loaded %d signing key(s) of the tenant", len(keys))
