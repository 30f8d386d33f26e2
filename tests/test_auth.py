"""We test these aspects of connectors.auth, connectors.graph and connectors.sharepoint against the
local tenant (real msal, msgraph-sdk and office365 over HTTPS):

* certificate auth gets a Graph and a SharePoint token (two audiences), signed with PS256 and
  identified by the certificate's SHA-256 thumbprint (x5t#S256);
* tokens are cached: a second call makes no HTTP request; one msal app per process serves a
  second authenticator from msal's cache;
* a client secret works for Graph and is refused for SharePoint before any request;
* REQUESTS_CA_BUNDLE (and friends) pointing at a bogus file do not break our clients, while a
  wrong CA does (TLS really is verified);
* errors from the token endpoint become one-line AuthErrors with the AADSTS code and a hint;
* the unprivileged app gets a token but 403 on the site through the Graph client.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
from azure.core.credentials import AccessToken
from kiota_abstractions.api_error import APIError

from config.settings import Settings
from connectors.auth import REFRESH_MARGIN, AppRegistry, Authenticator, Resource
from connectors.errors import AuthError, CredentialNotSupported, Forbidden, TransportError
from connectors.graph import GraphTokenProvider, build_graph_client, from_api_error
from connectors.sharepoint import build_sharepoint_context

BOGUS_CA_ENV = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")


def load(tenant_info: dict[str, Any], **overrides: Any) -> Settings:
    path = Path(tenant_info["data_dir"]) / "tenant.json"
    return Settings.load(env_file=None, tenant_file=path, **overrides)


@pytest.fixture
def settings(tenant_info: dict[str, Any]) -> Settings:
    return load(tenant_info)


class Recorder:
    """Counts the HTTP requests of one authenticator at its transport seam (a requests hook)."""

    def __init__(self, authenticator: Authenticator) -> None:
        self.requests: list[requests.PreparedRequest] = []
        authenticator.http_session.hooks["response"].append(self._hook)

    def _hook(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.requests.append(response.request)

    @property
    def token_requests(self) -> list[requests.PreparedRequest]:
        return [r for r in self.requests if (r.url or "").endswith("/oauth2/v2.0/token")]


def claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def jwt_header(token: str) -> dict[str, Any]:
    part = token.split(".", maxsplit=1)[0]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def token_requests_in_stats(admin: Any) -> int:
    stats = admin.get("/stats").json()
    return int(sum(r["count"] for r in stats["requests"] if r["route"] == "entra.token"))


# ---------------------------------------------------------------------------------------------- tokens
def test_certificate_gets_graph_and_sharepoint_tokens(settings: Settings,
                                                      tenant_info: dict[str, Any]) -> None:
    auth = Authenticator(settings, registry=AppRegistry())
    recorder = Recorder(auth)
    graph, sharepoint = auth.token(Resource.GRAPH), auth.token(Resource.SHAREPOINT)
    assert graph.source == sharepoint.source == "identity_provider"
    assert claims(graph.value)["aud"] == "https://graph.microsoft.com"
    assert claims(sharepoint.value)["aud"] == tenant_info["sharepoint_scope"].removesuffix("/.default")
    assert claims(graph.value)["appid"] == tenant_info["client_id"]
    assert "Sites.Selected" in claims(graph.value)["roles"]
    # msal signed the client assertion with PS256 and named the certificate by its SHA-256 thumbprint.
    assert len(recorder.token_requests) == 2
    form = parse_qs(str(recorder.token_requests[0].body))
    header = jwt_header(form["client_assertion"][0])
    assert header["alg"] == "PS256"
    assert "x5t#S256" in header
    assert "x5t" not in header
    assert "client_secret" not in form


def test_second_call_makes_no_http_request(settings: Settings, admin: Any) -> None:
    registry = AppRegistry()
    auth = Authenticator(settings, registry=registry)
    recorder = Recorder(auth)
    first = auth.token(Resource.GRAPH)
    before = token_requests_in_stats(admin)
    assert auth.token(Resource.GRAPH) is first  # our in-memory layer: msal not even asked
    assert len(recorder.token_requests) == 1
    # A second authenticator in the same process shares the msal app and thus its token cache.
    other = Authenticator(settings, registry=registry)
    other_recorder = Recorder(other)
    again = other.token(Resource.GRAPH)
    assert again.source == "cache"
    assert again.value == first.value
    assert other_recorder.requests == []
    assert len(registry) == 1
    assert token_requests_in_stats(admin) == before


def test_expiring_token_is_refreshed_through_msal(settings: Settings) -> None:
    skew = [0.0]  # our layer's clock runs ahead of msal's by this much
    auth = Authenticator(settings, registry=AppRegistry(), clock=lambda: time.time() + skew[0])
    recorder = Recorder(auth)
    first = auth.token(Resource.SHAREPOINT)
    # Just inside the refresh margin our layer lets go; msal, on the real clock, still has it cached.
    skew[0] = first.expires_on - time.time() - REFRESH_MARGIN + 1
    assert auth.cached(Resource.SHAREPOINT) is None
    refreshed = auth.token(Resource.SHAREPOINT)
    assert refreshed is not first
    assert refreshed.source == "cache"
    assert len(recorder.token_requests) == 1


def test_sharepoint_token_response_expires_before_the_token(settings: Settings) -> None:
    auth = Authenticator(settings, registry=AppRegistry())
    response = auth.token_response(Resource.SHAREPOINT)
    token = auth.token(Resource.SHAREPOINT)
    assert response["token_type"] == "Bearer"
    assert response["access_token"] == token.value
    assert 0 < response["expires_in"] <= token.expires_on - time.time() - REFRESH_MARGIN + 1


def test_azure_core_credential_adapter(settings: Settings) -> None:
    auth = Authenticator(settings, registry=AppRegistry())
    credential = auth.token_credential()
    token = credential.get_token(settings.endpoints.graph_scope)
    assert isinstance(token, AccessToken)
    assert token.token == auth.access_token(Resource.GRAPH)
    info = credential.get_token_info(settings.endpoints.sharepoint_scope)
    assert info.token == auth.access_token(Resource.SHAREPOINT)
    with pytest.raises(AuthError, match="no configured resource has the scope"):
        credential.get_token("https://vault.azure.net/.default")


# ---------------------------------------------------------------------------------------------- secrets
def test_client_secret_works_for_graph_and_is_refused_for_sharepoint(tenant_info: dict[str, Any]) -> None:
    # The admin app has a client secret (and Sites.FullControl.All), like a one-off admin tool.
    settings = load(tenant_info, auth={"client_id": tenant_info["admin_client_id"], "certificate_path": None,
                                       "client_secret": tenant_info["admin_client_secret"]})
    assert settings.auth.certificate_path is None
    auth = Authenticator(settings, registry=AppRegistry())
    recorder = Recorder(auth)
    with pytest.raises(CredentialNotSupported) as info:
        auth.token(Resource.SHAREPOINT)
    assert "SharePoint REST rejects app-only tokens obtained with a client secret" in str(info.value)
    assert "CARTIF_AUTH__CERTIFICATE_PATH" in str(info.value)
    assert tenant_info["admin_client_secret"] not in str(info.value)
    assert recorder.requests == []  # refused before any request
    with pytest.raises(CredentialNotSupported):
        build_sharepoint_context(settings, auth)
    assert claims(auth.access_token(Resource.GRAPH))["appidacr"] == "1"  # "1" = authenticated by secret
    form = parse_qs(str(recorder.token_requests[0].body))
    assert "client_assertion" not in form


def test_wrong_client_secret_is_an_auth_error_without_the_secret(tenant_info: dict[str, Any]) -> None:
    wrong = "wrong-" + uuid.uuid4().hex
    settings = load(tenant_info, auth={"client_id": tenant_info["admin_client_id"], "certificate_path": None,
                                       "client_secret": wrong})
    with pytest.raises(AuthError) as info:
        Authenticator(settings, registry=AppRegistry()).token(Resource.GRAPH)
    assert info.value.error == "invalid_client"
    assert "AADSTS7000215" in str(info.value)
    assert "CARTIF_AUTH__CLIENT_SECRET" in str(info.value)
    assert wrong not in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_client_id_names_the_setting(tenant_info: dict[str, Any]) -> None:
    settings = load(tenant_info, auth={"client_id": str(uuid.uuid4())})
    with pytest.raises(AuthError) as info:
        Authenticator(settings, registry=AppRegistry()).token(Resource.GRAPH)
    assert info.value.error == "unauthorized_client"
    assert str(info.value).startswith("token request for graph refused: unauthorized_client: AADSTS700016")
    assert str(info.value).endswith("check CARTIF_AUTH__CLIENT_ID (no such app in this tenant)")


def test_certificate_of_another_app_is_refused(tenant_info: dict[str, Any]) -> None:
    settings = load(tenant_info, auth={"client_id": tenant_info["client_id"],
                                       "certificate_path": tenant_info["unprivileged_certificate_path"]})
    with pytest.raises(AuthError) as info:
        Authenticator(settings, registry=AppRegistry()).token(Resource.GRAPH)
    assert "AADSTS700027" in str(info.value)
    assert "CARTIF_AUTH__CERTIFICATE_PATH" in str(info.value)


def test_pem_without_private_key_is_reported(tenant_info: dict[str, Any], tmp_path: Path) -> None:
    text = Path(tenant_info["certificate_path"]).read_text()
    cert_only = tmp_path / "cert-only.pem"
    cert_only.write_text(text[: text.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")])
    settings = load(tenant_info, auth={"client_id": tenant_info["client_id"], "certificate_path": cert_only})
    with pytest.raises(AuthError, match=r"^CARTIF_AUTH__CERTIFICATE_PATH: .* holds no PEM private key"):
        Authenticator(settings, registry=AppRegistry())


# ---------------------------------------------------------------------------------------------- TLS
def test_bogus_ca_bundle_variables_do_not_break_our_clients(settings: Settings, tenant_info: dict[str, Any],
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           tmp_path: Path) -> None:
    bogus = tmp_path / "bogus-ca.pem"
    bogus.write_text("not a certificate\n")
    for name in BOGUS_CA_ENV:
        monkeypatch.setenv(name, str(bogus))
    # The trap is real: a plain session with verify=ca_path is overridden by the environment.
    plain = requests.Session()
    plain.verify = tenant_info["ca_path"]
    with pytest.raises(OSError):  # requests' SSLError and "invalid path" both are OSErrors
        plain.get(tenant_info["admin_url"] + "/health", timeout=10)
    plain.close()

    auth = Authenticator(settings, registry=AppRegistry())
    assert auth.token(Resource.GRAPH).source == "identity_provider"
    ctx = build_sharepoint_context(settings, auth)
    web = ctx.web.get().execute_query()
    assert web.url == settings.endpoints.site_url


def test_wrong_ca_is_a_transport_error(tenant_info: dict[str, Any]) -> None:
    # Any valid CA file that did not sign the server's certificate: the app certificate will do.
    settings = load(tenant_info, endpoints={"ca_path": tenant_info["certificate_path"]})
    with pytest.raises(TransportError) as info:
        Authenticator(settings, registry=AppRegistry()).token(Resource.GRAPH)
    assert "TLS verification failed" in str(info.value)
    assert "CARTIF_ENDPOINTS__CA_PATH" in str(info.value)


# ---------------------------------------------------------------------------------------------- clients
async def test_graph_client_reads_the_site_as_the_bot(settings: Settings, monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    (tmp_path / "bogus.pem").write_text("x")
    for name in BOGUS_CA_ENV:
        monkeypatch.setenv(name, str(tmp_path / "bogus.pem"))
    auth = Authenticator(settings, registry=AppRegistry())
    client = build_graph_client(settings, auth)
    assert settings.endpoints.site_id
    lists = await client.sites.by_site_id(settings.endpoints.site_id).lists.get()
    assert lists is not None
    assert lists.value is not None
    assert "Documents" in [item.display_name for item in lists.value]


async def test_unprivileged_app_gets_a_token_but_403_on_the_site(tenant_info: dict[str, Any]) -> None:
    settings = load(tenant_info, auth={"client_id": tenant_info["unprivileged_client_id"],
                                       "certificate_path": tenant_info["unprivileged_certificate_path"]})
    auth = Authenticator(settings, registry=AppRegistry())
    token = await asyncio.to_thread(auth.token, Resource.GRAPH)
    assert claims(token.value)["roles"] == ["Sites.Selected"]
    client = build_graph_client(settings, auth)
    assert settings.endpoints.site_id
    with pytest.raises(APIError) as info:
        await client.sites.by_site_id(settings.endpoints.site_id).lists.get()
    error = from_api_error(info.value)
    assert isinstance(error, Forbidden)
    assert error.status_code == 403
    assert error.code == "accessDenied"
    assert error.surface == "graph"
    assert error.request_id


async def test_graph_token_provider_only_authenticates_the_graph_host(settings: Settings) -> None:
    auth = Authenticator(settings, registry=AppRegistry())
    provider = GraphTokenProvider(auth, "localhost")
    assert await provider.get_authorization_token("https://evil.example.org/v1.0/sites") == ""
    token = await provider.get_authorization_token(settings.endpoints.graph_url + "/sites")
    assert token == auth.access_token(Resource.GRAPH)
