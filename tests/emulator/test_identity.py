"""The local tenant's Entra ID: discovery, the client-credentials grant, and token checks.

We test these aspects:
- msal obtains Graph and SharePoint tokens with a certificate, and caches them;
- wrong secrets, unknown apps, unknown tenants, foreign certificates and bad scopes are refused
  with Entra's error codes;
- Graph and SharePoint refuse forged, expired-shaped and wrong-audience tokens with 401 and a
  ``WWW-Authenticate`` challenge, and a valid token without a grant gets 403.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
import msal
import pytest
import requests

from emulator.identity import make_app_certificate
from tests import sdk


def _session(info: dict[str, Any]) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.verify = info["ca_path"]
    return session


def test_openid_configuration_names_the_token_endpoint(tenant_info: dict[str, Any]) -> None:
    r = httpx.get(tenant_info["authority"] + "/v2.0/.well-known/openid-configuration",
                  verify=tenant_info["ca_path"], trust_env=False)
    assert r.status_code == 200
    config = r.json()
    assert config["token_endpoint"] == tenant_info["authority"] + "/oauth2/v2.0/token"
    keys = httpx.get(config["jwks_uri"], verify=tenant_info["ca_path"], trust_env=False).json()["keys"]
    assert keys and keys[0]["kty"] == "RSA" and keys[0]["kid"]


def test_certificate_grant_issues_tokens_per_resource_and_caches(tenant_info: dict[str, Any]) -> None:
    app = sdk.msal_app(tenant_info)
    graph = app.acquire_token_for_client(scopes=[tenant_info["graph_scope"]])
    sharepoint = app.acquire_token_for_client(scopes=[tenant_info["sharepoint_scope"]])
    assert graph["token_source"] == "identity_provider"
    assert sharepoint["token_source"] == "identity_provider"
    claims_g = jwt.decode(graph["access_token"], options={"verify_signature": False})
    claims_s = jwt.decode(sharepoint["access_token"], options={"verify_signature": False})
    assert claims_g["aud"] == "https://graph.microsoft.com"
    assert claims_s["aud"] == tenant_info["sharepoint_url"]
    assert claims_g["appid"] == tenant_info["client_id"]
    assert "Sites.Selected" in claims_g["roles"]
    assert claims_g["exp"] - time.time() > 3000
    again = app.acquire_token_for_client(scopes=[tenant_info["graph_scope"]])
    assert again["token_source"] == "cache"


def test_client_secret_grant_works_for_an_app_that_has_one(tenant_info: dict[str, Any]) -> None:
    app = msal.ConfidentialClientApplication(
        tenant_info["admin_client_id"], authority=tenant_info["authority"],
        client_credential=tenant_info["admin_client_secret"], instance_discovery=False,
        http_client=_session(tenant_info))
    assert "access_token" in app.acquire_token_for_client(scopes=[tenant_info["graph_scope"]])
    wrong = msal.ConfidentialClientApplication(
        tenant_info["admin_client_id"], authority=tenant_info["authority"], client_credential="not-the-secret",
        instance_discovery=False, http_client=_session(tenant_info))
    result = wrong.acquire_token_for_client(scopes=[tenant_info["graph_scope"]])
    assert result["error"] == "invalid_client"
    assert "AADSTS7000215" in result["error_description"]


def test_a_certificate_not_registered_for_the_app_is_refused(tenant_info: dict[str, Any]) -> None:
    pem, cert = make_app_certificate("intruder")
    app = msal.ConfidentialClientApplication(
        tenant_info["client_id"], authority=tenant_info["authority"],
        client_credential={"private_key": pem, "public_certificate": cert}, instance_discovery=False,
        http_client=_session(tenant_info))
    result = app.acquire_token_for_client(scopes=[tenant_info["graph_scope"]])
    assert result["error"] == "invalid_client"
    assert "AADSTS700027" in result["error_description"]


@pytest.mark.parametrize(("scope", "code"), [
    ("https://graph.microsoft.com/User.Read", "AADSTS1002012"),
    ("https://contoso.sharepoint.com/.default", "AADSTS500011"),
])
def test_bad_scopes_are_refused(tenant_info: dict[str, Any], scope: str, code: str) -> None:
    result = sdk.msal_app(tenant_info).acquire_token_for_client(scopes=[scope])
    assert code in result.get("error_description", "")


def test_unknown_app_and_unknown_tenant_are_refused(tenant_info: dict[str, Any]) -> None:
    pem, cert = sdk.split_pem(tenant_info["certificate_path"])
    stranger = msal.ConfidentialClientApplication(
        "11111111-2222-3333-4444-555555555555", authority=tenant_info["authority"],
        client_credential={"private_key": pem, "public_certificate": cert}, instance_discovery=False,
        http_client=_session(tenant_info))
    assert "AADSTS700016" in stranger.acquire_token_for_client(scopes=[tenant_info["graph_scope"]])[
        "error_description"]
    r = httpx.post(tenant_info["authority"].rsplit("/", 1)[0] + "/not-a-tenant/oauth2/v2.0/token",
                   data={"grant_type": "client_credentials"}, verify=tenant_info["ca_path"], trust_env=False)
    assert r.status_code == 400 and "AADSTS90002" in r.json()["error_description"]


def _site_url(info: dict[str, Any]) -> str:
    return f"{info['graph_url']}/sites/{info['site_id']}"


def test_graph_refuses_missing_forged_and_wrong_audience_tokens(tenant_info: dict[str, Any],
                                                                tokens: sdk.Tokens) -> None:
    url = _site_url(tenant_info)
    missing = httpx.get(url, verify=tenant_info["ca_path"], trust_env=False)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert missing.json()["error"]["code"] == "InvalidAuthenticationToken"

    real = jwt.decode(tokens.graph(), options={"verify_signature": False})
    pem, _ = make_app_certificate("forger")
    forged = jwt.encode(real, pem, algorithm="RS256")
    r = httpx.get(url, headers={"Authorization": f"Bearer {forged}"}, verify=tenant_info["ca_path"],
                  trust_env=False)
    assert r.status_code == 401 and "www-authenticate" in r.headers

    r = httpx.get(url, headers={"Authorization": f"Bearer {tokens.sharepoint()}"}, verify=tenant_info["ca_path"],
                  trust_env=False)
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "Invalid audience."


def test_sharepoint_refuses_a_graph_token(tenant_info: dict[str, Any], tokens: sdk.Tokens) -> None:
    r = httpx.get(tenant_info["site_url"] + "/_api/web", headers={
        "Authorization": f"Bearer {tokens.graph()}", "Accept": "application/json;odata=verbose"},
        verify=tenant_info["ca_path"], trust_env=False)
    assert r.status_code == 401
    assert "www-authenticate" in r.headers


def test_an_app_without_a_grant_on_the_site_gets_403(tenant_info: dict[str, Any], tokens: sdk.Tokens) -> None:
    token = tokens.graph("unprivileged")
    r = httpx.get(_site_url(tenant_info), headers={"Authorization": f"Bearer {token}"},
                  verify=tenant_info["ca_path"], trust_env=False)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "accessDenied"
    r = httpx.get(tenant_info["site_url"] + "/_api/web", headers={
        "Authorization": f"Bearer {tokens.sharepoint('unprivileged')}", "Accept": "application/json;odata=verbose"},
        verify=tenant_info["ca_path"], trust_env=False)
    assert r.status_code == 403
