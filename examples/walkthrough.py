"""A third-party script against the local tenant, knowing nothing but ``tenant.json``.

    python examples/walkthrough.py .data/tenant/tenant.json

It uses only msal, msgraph-sdk and office365-rest-python-client, configured the way one would
for a real tenant (the authority, Graph URL, site URL and CA come from the connection file):
authenticate with the app's certificate, list and page children, run delta, upload and version
a file, break inheritance on a folder and add a role assignment through SharePoint REST, see that
grant in Graph permissions, and check that an app without a grant gets 403 and a forged token 401.
Each step prints one line; any surprise raises.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import msal
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from kiota_abstractions.api_error import APIError
from kiota_abstractions.authentication import (
    AccessTokenProvider,
    AllowedHostsValidator,
    BaseBearerTokenAuthenticationProvider,
)
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.models.drive_item import DriveItem
from msgraph.generated.models.folder import Folder
from msgraph_core import GraphClientFactory
from office365.runtime.auth.token_response import TokenResponse
from office365.sharepoint.client_context import ClientContext
from office365.sharepoint.sharing.role_type import RoleType


def step(text: str) -> None:
    print(f"  ok  {text}", flush=True)


def msal_app(info: dict[str, Any], client_id: str, cert_path: str) -> msal.ConfidentialClientApplication:
    pem = Path(cert_path).read_text()
    cert = pem[: pem.index("-----END CERTIFICATE-----") + 25]
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE must not override the tenant's CA
    session.verify = info["ca_path"]
    return msal.ConfidentialClientApplication(
        client_id, authority=info["authority"], instance_discovery=False, http_client=session,
        client_credential={"private_key": pem, "public_certificate": cert})


def token(app: msal.ConfidentialClientApplication, scope: str) -> str:
    result = app.acquire_token_for_client(scopes=[scope])
    if "access_token" not in result:
        raise RuntimeError(f"token request failed: {result.get('error_description')}")
    return str(result["access_token"])


class MsalTokenProvider(AccessTokenProvider):  # type: ignore[misc]
    def __init__(self, app: msal.ConfidentialClientApplication, scope: str, host: str) -> None:
        self.app, self.scope, self.hosts = app, scope, AllowedHostsValidator([host])

    async def get_authorization_token(self, uri: str, additional_authentication_context: Any = None) -> str:
        return await asyncio.to_thread(token, self.app, self.scope) if self.hosts.is_url_host_valid(uri) else ""

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return self.hosts


def graph_client(info: dict[str, Any], app: msal.ConfidentialClientApplication) -> GraphServiceClient:
    base = info["graph_url"]
    http = GraphClientFactory.create_with_default_middleware(client=httpx.AsyncClient(
        base_url=base, verify=ssl.create_default_context(cafile=info["ca_path"]), trust_env=False))
    adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(
        MsalTokenProvider(app, info["graph_scope"], urlsplit(base).hostname or "")), client=http)
    adapter.base_url = base
    return GraphServiceClient(request_adapter=adapter)


async def walk(info: dict[str, Any]) -> None:
    app = msal_app(info, info["client_id"], info["certificate_path"])
    token(app, info["graph_scope"])
    token(app, info["sharepoint_scope"])
    step("certificate authentication: Graph and SharePoint tokens")

    graph = graph_client(info, app)
    drive = graph.drives.by_drive_id(info["drive_id"])
    name = f"walkthrough-{uuid.uuid4().hex[:6]}"
    folder = await drive.items.by_drive_item_id("root").children.post(
        DriveItem(name=name, folder=Folder(), additional_data={"@microsoft.graph.conflictBehavior": "fail"}))
    assert folder is not None and folder.id
    for i in range(5):
        await drive.items.by_drive_item_id(f"root:/{name}/note-{i}.txt:").content.put(f"note {i}".encode())
    config = RequestConfiguration(query_parameters=drive.items.by_drive_item_id(folder.id).children
                                  .ChildrenRequestBuilderGetQueryParameters(top=2))
    page = await drive.items.by_drive_item_id(folder.id).children.get(request_configuration=config)
    names = []
    while page is not None:
        names += [item.name for item in page.value or []]
        page = (await drive.items.by_drive_item_id(folder.id).children.with_url(page.odata_next_link).get()
                if page.odata_next_link else None)
    assert names == [f"note-{i}.txt" for i in range(5)], names
    step(f"children paged two at a time: {len(names)} items")

    delta = await drive.items.by_drive_item_id("root").delta.get()
    seen = 0
    while delta is not None and delta.odata_next_link:  # PageIterator loses the deltaLink: page by hand
        seen += len(delta.value or [])
        delta = await drive.items.by_drive_item_id("root").delta.with_url(delta.odata_next_link).get()
    assert delta is not None and delta.odata_delta_link
    seen += len(delta.value or [])
    await drive.items.by_drive_item_id(f"root:/{name}/note-0.txt:").content.put(b"note 0, revised")
    after = await drive.items.by_drive_item_id("root").delta.with_url(delta.odata_delta_link).get()
    assert after is not None and [i.name for i in after.value or [] if i.file] == ["note-0.txt"]
    step(f"delta: {seen} items enumerated, then exactly the one changed file")

    versions = await drive.items.by_drive_item_id(f"root:/{name}/note-0.txt:").versions.get()
    assert versions is not None and [v.id for v in versions.value or []] == ["2.0", "1.0"]
    step("upload and version: note-0.txt has versions 2.0 and 1.0")

    session = requests.Session()
    session.trust_env = False
    ctx = (ClientContext(info["site_url"])
           .with_access_token(lambda: TokenResponse(access_token=token(app, info["sharepoint_scope"]),
                                                    token_type="Bearer"))
           .with_transport(session=session, verify=info["ca_path"]))
    item = ctx.web.get_folder_by_server_relative_url(f"Shared Documents/{name}").list_item_all_fields
    item.break_role_inheritance(copy_role_assignments=False, clear_sub_scopes=False)
    delegate = ctx.web.ensure_user("madina.abenova@mti.gov.kz")
    ctx.execute_query()
    reader = ctx.web.role_definitions.get_by_type(RoleType.Reader)
    ctx.load(reader)
    ctx.execute_query()
    item.role_assignments.add_role_assignment(delegate.id, reader.id)
    ctx.load(item, ["HasUniqueRoleAssignments"])
    ctx.execute_query()
    assert item.has_unique_role_assignments
    step(f"SharePoint REST: inheritance broken on {name}, Read granted to {delegate.login_name}")

    permissions = await drive.items.by_drive_item_id(folder.id).permissions.get()
    granted = [p for p in permissions.value or [] if p.granted_to_v2 and p.granted_to_v2.site_user
               and p.granted_to_v2.site_user.login_name == delegate.login_name]
    assert granted and granted[0].roles == ["read"], permissions
    step("Graph permissions show the same grant: read")

    stranger = graph_client(info, msal_app(info, info["unprivileged_client_id"],
                                           info["unprivileged_certificate_path"]))
    try:
        await stranger.sites.by_site_id(info["site_id"]).get()
        raise AssertionError("an app without a grant read the site")
    except APIError as exc:
        assert exc.response_status_code == 403
    step("an app without a grant on the site: 403")

    claims = jwt.decode(token(app, info["graph_scope"]), options={"verify_signature": False})
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims, key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()), "RS256")
    r = httpx.get(f"{info['graph_url']}/sites/{info['site_id']}", headers={"Authorization": f"Bearer {forged}"},
                  verify=info["ca_path"], trust_env=False)
    assert r.status_code == 401, r.status_code
    step("a forged token: 401 " + r.headers["www-authenticate"].split(",")[0])


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: python examples/walkthrough.py DIR/tenant.json")
    info = json.loads(Path(sys.argv[1]).read_text())
    print(f"walkthrough against {info['site_url']}")
    asyncio.run(walk(info))
    print("all steps passed")


if __name__ == "__main__":
    main()
