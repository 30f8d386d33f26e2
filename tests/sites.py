"""A test's own negotiation site on the shared local tenant, and the bot's permission connector for it.

The tenant is shared with other tests: a test's structure lives under the test's own root folder
and its groups carry the test's unique prefix (``own_structure``). ``DELEGATIONS`` is the start
of the small structure the permission and circulation tests declare: the roles and the two
delegations they all use; each test file goes on from there with its own working groups, roster
and folders. ``permission_site`` loads the settings from the tenant's connection file and builds
the connector exactly as the CLI does, closing the authenticator at the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from config.settings import Settings
from config.structure import Structure, parse_structure
from connectors.auth import Authenticator
from connectors.sharepoint_permissions import SharePointPermissions, build_site_permissions

#: The roles and delegations every test site has; a structure goes on with ``participants``
#: entries of its own, then ``working_groups``, ``roster`` and ``folders``.
DELEGATIONS = """
version: 1
roles:
  chief_negotiator: {name: Chief Negotiator, groups: [chief_negotiators]}
  delegate: {name: Delegate}
  secretariat: {name: Secretariat, groups: [secretariat]}
participants:
  - {code: KAZ, name: Kazakhstan}
  - {code: KGZ, name: Kyrgyz Republic}
"""


def own_structure(text: str, unique: str) -> Structure:
    """The structure of ``text`` under the test's own root folder ``unique`` and group-name prefix."""
    return parse_structure(text).with_overrides(root=unique, prefix=f"{unique} ")


@dataclasses.dataclass
class PermissionSite:
    structure: Structure
    settings: Settings
    authenticator: Authenticator
    connector: SharePointPermissions


@contextlib.contextmanager
def permission_site(tenant_info: dict[str, Any], structure: Structure) -> Iterator[PermissionSite]:
    """The bot's permission connector for ``structure``'s library on the local tenant of ``tenant_info``."""
    settings = Settings.load(env_file=None, tenant_file=Path(tenant_info["data_dir"]) / "tenant.json")
    authenticator = Authenticator(settings)
    try:
        yield PermissionSite(structure, settings, authenticator,
                             build_site_permissions(settings, authenticator, library=structure.library))
    finally:
        authenticator.close()
