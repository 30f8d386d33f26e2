"""``cartif-bot demo``: the README's first command — a local tenant, seeded, shown working.

It starts the local Microsoft 365 tenant in ``.data/demo`` (fresh each time), seeds the CARTIF
workspace, and then looks at it exactly as the bot does in production: settings from the
tenant's connection file, a certificate token from msal, Graph through msgraph-sdk and
SharePoint REST through office365-rest-python-client. Later issues extend the story (sync,
permissions, circulation, notices); this part shows the ground they stand on.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

from kiota_abstractions.base_request_configuration import RequestConfiguration

from config.settings import Settings
from connectors.auth import Authenticator, Resource
from connectors.graph import build_graph_client
from connectors.sharepoint import build_sharepoint_context

DEMO_DIR = Path(".data/demo")


def _say(text: str = "") -> None:
    print(text, flush=True)


async def _show_graph(settings: Settings, authenticator: Authenticator) -> dict[str, Any]:
    graph = build_graph_client(settings, authenticator)
    endpoints = settings.endpoints
    site = await graph.sites.by_site_id(str(endpoints.site_id)).get()
    drive = graph.drives.by_drive_id(str(endpoints.drive_id))
    root = await drive.root.get()
    # Graph returns userType only when asked for it, as the real service does.
    users = await graph.users.get(request_configuration=RequestConfiguration(
        query_parameters=graph.users.UsersRequestBuilderGetQueryParameters(select=["displayName", "userType"])))
    groups = await graph.groups.get()
    assert site is not None and root is not None and users is not None and groups is not None
    welcome = b"Welcome to the CARTIF negotiation workspace.\n"
    item = await drive.items.by_drive_item_id("root:/Welcome.txt:").content.put(welcome)
    await drive.items.by_drive_item_id("root:/Welcome.txt:").content.put(welcome + b"Managed by cartif-bot.\n")
    versions = await drive.items.by_drive_item_id("root:/Welcome.txt:").versions.get()
    return {
        "site": site.display_name, "web_url": site.web_url, "site_id": site.id,
        "library_items": root.folder.child_count if root.folder else 0,
        "users": Counter(u.user_type or "Member" for u in users.value or []),
        "groups": [g.display_name for g in groups.value or []],
        "uploaded": item.name if item else None,
        "versions": [v.id for v in (versions.value if versions else None) or []],
    }


def _show_sharepoint(settings: Settings, authenticator: Authenticator) -> dict[str, Any]:
    ctx = build_sharepoint_context(settings, authenticator)
    web = ctx.web.get()
    groups = ctx.web.site_groups.get()
    roles = ctx.web.role_definitions.get()
    ctx.execute_query()
    return {"title": web.title, "url": web.url, "groups": [g.title for g in groups],
            "roles": [f"{r.name} ({r.id})" for r in roles]}


def run(*, keep: bool = False, data_dir: Path = DEMO_DIR) -> int:
    """Start, seed and show the local tenant; with ``keep`` it stays up until Ctrl-C."""
    from emulator.process import LocalTenantProcess  # the bot itself never needs the emulator

    started = time.monotonic()
    _say("cartif-bot demo — a local Microsoft 365 tenant with the CARTIF workspace\n")
    tenant = LocalTenantProcess(data_dir.resolve() / "tenant", seed="cartif")
    info = tenant.start(reset=True)
    try:
        _say(f"  local tenant   {info['graph_url'].rsplit('/', 1)[0]}  (state in {tenant.data_dir})")
        _say(f"  connection     {tenant.connection_file}")
        settings = Settings.load(env_file=None, tenant_file=str(tenant.connection_file))
        authenticator = Authenticator(settings)
        for resource in (Resource.GRAPH, Resource.SHAREPOINT):
            authenticator.token(resource)
        _say(f"  signed in      app {settings.auth.client_id} with its certificate (Graph and SharePoint tokens)\n")

        graph = asyncio.run(_show_graph(settings, authenticator))
        _say(f"Graph       site '{graph['site']}'  {graph['web_url']}")
        _say(f"            library 'Documents': {graph['library_items']} item(s) before the demo;"
             f" uploaded {graph['uploaded']} twice → versions {', '.join(graph['versions'])}")
        users = ", ".join(f"{n} {kind.lower()}s" for kind, n in sorted(graph["users"].items()))
        _say(f"            directory: {users}; groups: {', '.join(graph['groups'])}")

        sp = _show_sharepoint(settings, authenticator)
        _say(f"SharePoint  web '{sp['title']}'  {sp['url']}")
        _say(f"            site groups: {', '.join(sp['groups'])}")
        _say(f"            permission levels: {', '.join(sp['roles'])}")

        channels = info["teams_webhooks"]
        _say(f"Teams       {len(channels)} channels with Workflows webhooks: {', '.join(sorted(channels))}")
        _say(f"            messages page: {info['teams_url']}")
        _say(f"Admin       {info['admin_url']}/stats  (requests, resource units, faults)\n")
        _say(f"done in {time.monotonic() - started:.1f} s. Next: "
             f"CARTIF_TENANT_FILE={tenant.connection_file} cartif-bot config show")
        if keep:
            _say("the local tenant keeps running; Ctrl-C stops it")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        authenticator_close = locals().get("authenticator")
        if isinstance(authenticator_close, Authenticator):
            authenticator_close.close()
        tenant.stop()
    return 0
