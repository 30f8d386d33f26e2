"""Clients for tests: the real msal, msgraph-sdk and office365-rest-python-client, pointed at a
local tenant through nothing but its ``tenant.json``.

This is deliberately the minimum a third-party script would write; the bot's own connectors
(``connectors.auth`` and friends) are tested separately against the same tenant.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any
from urllib.parse import urlsplit

import httpx
import msal
import requests
from kiota_abstractions.authentication import (
    AccessTokenProvider,
    AllowedHostsValidator,
    BaseBearerTokenAuthenticationProvider,
)
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph_core import GraphClientFactory
from office365.sharepoint.client_context import ClientContext


def split_pem(path: str) -> tuple[str, str]:
    """(whole PEM with key, certificate part only)."""
    pem = open(path).read()  # noqa: SIM115
    end = "-----END CERTIFICATE-----"
    return pem, pem[: pem.index(end) + len(end)] + "\n"


def msal_app(info: dict[str, Any], client: str = "bot") -> msal.ConfidentialClientApplication:
    prefix = "" if client == "bot" else f"{client}_"
    pem, cert = split_pem(info[f"{prefix}certificate_path"])
    session = requests.Session()
    session.trust_env = False
    session.verify = info["ca_path"]
    return msal.ConfidentialClientApplication(
        info[f"{prefix}client_id"], authority=info["authority"],
        client_credential={"private_key": pem, "public_certificate": cert},
        instance_discovery=False, http_client=session)


class Tokens:
    def __init__(self, info: dict[str, Any]) -> None:
        self.info = info
        self._apps: dict[str, msal.ConfidentialClientApplication] = {}

    def app(self, client: str) -> msal.ConfidentialClientApplication:
        if client not in self._apps:
            self._apps[client] = msal_app(self.info, client)
        return self._apps[client]

    def _get(self, scope: str, client: str) -> str:
        result = self.app(client).acquire_token_for_client(scopes=[scope])
        if "access_token" not in result:
            raise RuntimeError(f"no token: {result}")
        return str(result["access_token"])

    def graph(self, client: str = "bot") -> str:
        return self._get(self.info["graph_scope"], client)

    def sharepoint(self, client: str = "bot") -> str:
        return self._get(self.info["sharepoint_scope"], client)


class _Provider(AccessTokenProvider):  # type: ignore[misc]
    def __init__(self, tokens: Tokens, client: str, host: str) -> None:
        self._tokens, self._client = tokens, client
        self._hosts = AllowedHostsValidator([host])

    async def get_authorization_token(self, uri: str, additional_authentication_context: Any = None) -> str:
        if not self._hosts.is_url_host_valid(uri):
            return ""
        return await asyncio.to_thread(self._tokens.graph, self._client)

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return self._hosts


def ssl_context(info: dict[str, Any]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=info["ca_path"])


def graph_client(info: dict[str, Any], tokens: Tokens, client: str = "bot") -> GraphServiceClient:
    base = info["graph_url"]
    http = GraphClientFactory.create_with_default_middleware(
        client=httpx.AsyncClient(base_url=base, verify=ssl_context(info), trust_env=False,
                                 timeout=httpx.Timeout(30, connect=10)))
    adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(
        _Provider(tokens, client, urlsplit(base).hostname or "localhost")), client=http)
    adapter.base_url = base  # without it URLs become ".../v1.0//drives" (anchors-permissions §1.4)
    return GraphServiceClient(request_adapter=adapter)


def graph_http(info: dict[str, Any], tokens: Tokens, client: str = "bot") -> httpx.AsyncClient:
    async def auth(request: httpx.Request) -> None:
        request.headers["Authorization"] = "Bearer " + await asyncio.to_thread(tokens.graph, client)

    return httpx.AsyncClient(base_url=info["graph_url"], verify=ssl_context(info), trust_env=False,
                             event_hooks={"request": [auth]}, timeout=30)


def sp_context(info: dict[str, Any], tokens: Tokens, client: str = "bot") -> ClientContext:
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE must not override the tenant's CA
    session.verify = info["ca_path"]
    return (ClientContext(info["site_url"])
            .with_access_token(lambda: _token_response(tokens.sharepoint(client)))
            .with_transport(session=session, verify=info["ca_path"]))


def _token_response(token: str) -> Any:
    from office365.runtime.auth.token_response import TokenResponse

    return TokenResponse(access_token=token, token_type="Bearer")


def sp_http(info: dict[str, Any], tokens: Tokens, client: str = "bot") -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.verify = info["ca_path"]
    session.headers.update({"Authorization": "Bearer " + tokens.sharepoint(client),
                            "Accept": "application/json;odata=verbose"})
    return session
