"""Domain values of the permission reconcile: desired state, actual state, and the principals in both.

Where it sits: ``bot.desired`` builds a ``DesiredState`` from the declared structure,
``bot.observing`` builds an ``ActualState`` from the site, ``bot.planning`` compares the two.
Everything here is a frozen value; nothing does I/O.

Terminology:

* FOLDER — a governed folder, named by its PATH relative to the library root ("Plenary",
  "t-3f9a1c/Working groups/WG-TF"); paths use "/" and never start or end with one.
* UNIQUE / INHERIT — a folder either holds its own role assignments (HasUniqueRoleAssignments)
  or inherits its parent's.
* GROUP — a SharePoint site group the bot keeps (one per delegation, working group, Chief
  Negotiators, National Focal Points, Secretariat, Observers); MEMBERS are PEOPLE keyed by
  their lower-case mail address (or UPN), which is what the roster lists.
* PRINCIPAL KEY — how a role assignment's member is named in plans: a group's title for site
  groups, ``user:<mail>`` for people, ``app:<login>`` for app principals.
* GRANT — (principal key, LEVEL) on a folder; LEVEL is a permission level name (Read,
  Contribute, Edit, Full Control).
* SHARING LINK — a grant held by a hidden ``SharingLinks.*`` group; never desired on a
  governed folder, removed rather than revoked.
* LIMITED ACCESS — a binding SharePoint adds by itself on parents of shared items; reported,
  never planned.
* UNDECLARED ITEM — a subfolder or file directly inside a governed folder that the layout does
  not declare; it should inherit, so unique permissions or a sharing link on it are drift.
* OWNERSHIP MARKER — ``GROUP_MARKER`` ("[managed by cartif-bot]") at the end of a site group's
  Description: the bot writes it into every group it creates (and adds it to declared groups it
  adopted), and it is the only proof the bot accepts that it made a group.
* STALE GROUP — a site group named by the bot's naming patterns that the structure no longer
  declares (a disabled delegation, a dropped working group); deleted by the next apply only if
  its Description carries the ownership marker. One without it (a hand-made "CARTIF HR" matching
  "CARTIF {code}") is never touched: the plan shows it as a note.
* RULE — the sentence saying why something is desired ("folders.templates[5] 'Working
  groups/{wg}': wg:{wg} → Contribute"), carried into plans, the audit trail and `access who`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

__all__ = [
    "GROUP_MARKER",
    "LEVELS",
    "LIMITED_ACCESS",
    "ActualFolder",
    "ActualGroup",
    "ActualState",
    "DesiredGrant",
    "DesiredGroup",
    "DesiredState",
    "FolderSpec",
    "Link",
    "group_key",
    "is_marked",
    "marked",
    "user_key",
]

#: Permission levels the structure may grant, weakest first.
LEVELS = ("Read", "Contribute", "Edit", "Full Control")
#: SharePoint's own binding on parents of shared items (anchors-permissions §1.1, pnp/powershell#3708).
LIMITED_ACCESS = "Limited Access"
#: Ends the Description of every site group the bot creates: proof that the bot made the group, required
#: before it deletes one the structure no longer declares (a name matching the bot's patterns is not enough).
#: Human-readable on purpose: an admin sees it on the group's settings page and may keep or remove it.
GROUP_MARKER = "[managed by cartif-bot]"
#: A site group's Description holds at most 512 characters (MS-CSOMSPT SP.GroupCreationInformation).
DESCRIPTION_LIMIT = 512


def marked(description: str) -> str:
    """``description`` with the ownership marker at its end (unchanged when it already carries it); a
    description too long to take it is shortened, so the marker always fits SharePoint's limit."""
    text = description.strip()
    if is_marked(text):
        return text
    room = DESCRIPTION_LIMIT - len(GROUP_MARKER) - 1
    if len(text) > room:
        text = text[:room - 1].rstrip() + "…"
    return f"{text} {GROUP_MARKER}" if text else GROUP_MARKER


def is_marked(description: str | None) -> bool:
    """Whether a group's Description carries the ownership marker (the bot made or adopted the group)."""
    return GROUP_MARKER in (description or "")


def user_key(mail_or_upn: str) -> str:
    return f"user:{mail_or_upn.lower()}"


def group_key(title: str) -> str:
    return title


@dataclasses.dataclass(frozen=True, order=True)
class DesiredGrant:
    principal: str
    level: str
    rule: str = dataclasses.field(compare=False, default="")


@dataclasses.dataclass(frozen=True)
class FolderSpec:
    """A governed folder as declared: unique with exactly ``grants``, or inheriting."""

    path: str
    unique: bool
    grants: frozenset[DesiredGrant]
    rule: str

    def grant_pairs(self) -> frozenset[tuple[str, str]]:
        return frozenset((g.principal, g.level) for g in self.grants)


@dataclasses.dataclass(frozen=True)
class DesiredGroup:
    """A site group and its members (person key → the rule that puts them there)."""

    name: str
    description: str
    members: Mapping[str, str]
    rule: str


@dataclasses.dataclass(frozen=True)
class DesiredState:
    """Everything the bot keeps: folders (parents before children) and groups."""

    folders: tuple[FolderSpec, ...]
    groups: tuple[DesiredGroup, ...]
    keep: frozenset[str] = frozenset()
    """Principal keys never revoked from governed folders (besides the bot's own app)."""
    managed_groups: tuple[str, ...] = ()
    """Regexes of the group names the bot creates: such a group the structure does not declare is deleted
    when its Description carries ``GROUP_MARKER`` (and only reported otherwise)."""
    undeclared: str = "report"
    """Unique permissions on undeclared items inside governed folders: "report" only, or "inherit" (reset)."""
    item_managed: frozenset[str] = frozenset()
    """Governed folders whose items carry their own permissions set by the bot itself (the circulation
    archive's restricted copies): their items are not undeclared drift."""

    def folder(self, path: str) -> FolderSpec | None:
        return next((f for f in self.folders if f.path == path), None)

    @property
    def empty(self) -> bool:
        return not self.folders


@dataclasses.dataclass(frozen=True, order=True)
class Link:
    """A sharing link on a folder, seen as its hidden SharingLinks.* group's role assignment."""

    group_login: str
    level: str


@dataclasses.dataclass(frozen=True)
class ActualFolder:
    """A folder as observed: its own or inherited grants, links and Limited Access bindings apart."""

    path: str
    unique: bool
    grants: frozenset[tuple[str, str]]
    links: frozenset[Link] = frozenset()
    limited: frozenset[str] = frozenset()


@dataclasses.dataclass(frozen=True)
class ActualGroup:
    """A site group as observed: id, members (person key → login name) and Description."""

    name: str
    id: int
    members: Mapping[str, str]
    description: str = ""

    @property
    def bot_made(self) -> bool:
        """Its Description carries the ownership marker (``GROUP_MARKER``)."""
        return is_marked(self.description)


@dataclasses.dataclass(frozen=True)
class ActualState:
    """What the site holds for the governed folders and the groups the bot knows by name."""

    folders: Mapping[str, ActualFolder]
    groups: Mapping[str, ActualGroup]
    self_keys: frozenset[str] = frozenset()
    """Principal keys of the bot's own app: its Full Control is never revoked."""
    stale_groups: Mapping[str, ActualGroup] = dataclasses.field(default_factory=dict)
    """Site groups named like the bot's (``DesiredState.managed_groups``) that the structure no longer declares;
    only those carrying the ownership marker (``ActualGroup.bot_made``) are deleted."""
    undeclared: Mapping[str, ActualFolder] = dataclasses.field(default_factory=dict)
    """Undeclared subfolders and files, at any depth below governed folders, that have unique permissions."""
