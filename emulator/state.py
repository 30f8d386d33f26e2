"""The local tenant's durable state: one SQLite file holding the whole Microsoft 365 model.

Everything the HTTP surfaces (Entra ID, Graph, SharePoint REST, Teams, admin) show is read from
and written to this one model, so a grant made through SharePoint REST shows up in Graph
permissions and a file uploaded through Graph shows up as a SharePoint folder's child.

Terminology (SharePoint's, which Graph hides):
  site       a site collection with one web; Graph id ``{hostname},{siteGuid},{webGuid}``.
  list       a list or document library of the web; a library has a drive (Graph ``b!…`` id).
  item       a driveItem: file or folder of a library. Its list item id (int) and UniqueId
             (GUID) are what SharePoint REST shows; its Graph id is a 34-character string.
  scope      a securable object with unique role assignments: ``web:{site}``, ``list:{list}``
             or ``item:{item}``. Objects without a scope inherit from the nearest ancestor.
  principal  a site user, site group or app principal (one int id space per site, as in SP).
  seq        a tenant-wide change counter; every content change stamps the item with the next
             value. Delta tokens are positions in this sequence.

All methods run on the event loop's thread (the ASGI handlers are async and call them
directly), so the connection needs no locking; ``transaction()`` groups writes atomically.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import json
import os
import secrets
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from emulator.quickxor import quick_xor_hash

#: 2 added ``items.quick_xor`` (the hash Graph serves); 3 ``subscriptions.challenged_at`` (a pending
#: reauthorization); 4 ``subscriptions.include_security`` (``Prefer: includesecuritywebhooks``).
#: Older data directories are upgraded on open.
SCHEMA_VERSION = 4

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS apps(
    client_id TEXT PRIMARY KEY, display_name TEXT NOT NULL, cert_pem TEXT,
    secret_sha256 TEXT, roles TEXT NOT NULL DEFAULT '[]');
CREATE TABLE IF NOT EXISTS app_apis(
    identifier_uri TEXT PRIMARY KEY, client_id TEXT NOT NULL, roles TEXT NOT NULL DEFAULT '[]');
CREATE TABLE IF NOT EXISTS app_role_assignments(
    client_id TEXT NOT NULL, resource_client_id TEXT NOT NULL, role TEXT NOT NULL,
    PRIMARY KEY(client_id, resource_client_id, role));
CREATE TABLE IF NOT EXISTS site_grants(
    id TEXT PRIMARY KEY, site_id TEXT NOT NULL, client_id TEXT NOT NULL,
    display_name TEXT NOT NULL, roles TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users(
    id TEXT PRIMARY KEY, upn TEXT NOT NULL UNIQUE COLLATE NOCASE, display_name TEXT NOT NULL,
    mail TEXT, user_type TEXT NOT NULL DEFAULT 'Member', given_name TEXT, surname TEXT,
    job_title TEXT, department TEXT, country TEXT, account_enabled INTEGER NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS groups(
    id TEXT PRIMARY KEY, display_name TEXT NOT NULL, mail_nickname TEXT NOT NULL,
    description TEXT, security_enabled INTEGER NOT NULL DEFAULT 1,
    mail_enabled INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS group_members(
    group_id TEXT NOT NULL, member_id TEXT NOT NULL, PRIMARY KEY(group_id, member_id));
CREATE TABLE IF NOT EXISTS sites(
    id TEXT PRIMARY KEY, hostname TEXT NOT NULL, server_relative_url TEXT NOT NULL UNIQUE
    COLLATE NOCASE, title TEXT NOT NULL, description TEXT NOT NULL DEFAULT '',
    site_guid TEXT NOT NULL, web_guid TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS lists(
    id TEXT PRIMARY KEY, site_id TEXT NOT NULL, title TEXT NOT NULL COLLATE NOCASE,
    url_name TEXT NOT NULL, base_template INTEGER NOT NULL, entity_type_name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '', drive_id TEXT, created_at TEXT NOT NULL,
    modified_at TEXT NOT NULL, next_item_id INTEGER NOT NULL DEFAULT 1,
    fields TEXT NOT NULL DEFAULT '[]', UNIQUE(site_id, title));
CREATE TABLE IF NOT EXISTS drives(
    id TEXT PRIMARY KEY, site_id TEXT NOT NULL, list_id TEXT NOT NULL, name TEXT NOT NULL,
    created_at TEXT NOT NULL, delta_generation INTEGER NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS items(
    id TEXT PRIMARY KEY, drive_id TEXT NOT NULL, parent_id TEXT, name TEXT NOT NULL,
    is_folder INTEGER NOT NULL, path TEXT NOT NULL, uid TEXT NOT NULL,
    list_item_id INTEGER NOT NULL, size INTEGER NOT NULL DEFAULT 0, sha256 TEXT,
    mime TEXT, etag_no INTEGER NOT NULL DEFAULT 1, ctag_no INTEGER NOT NULL DEFAULT 1,
    major INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL, created_by TEXT NOT NULL,
    modified_at TEXT NOT NULL, modified_by TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0,
    seq INTEGER NOT NULL, fields TEXT NOT NULL DEFAULT '{}', description TEXT, quick_xor TEXT);
CREATE INDEX IF NOT EXISTS items_by_parent ON items(parent_id, deleted, name COLLATE NOCASE);
CREATE INDEX IF NOT EXISTS items_by_seq ON items(drive_id, seq);
CREATE INDEX IF NOT EXISTS items_by_global_seq ON items(seq);
CREATE INDEX IF NOT EXISTS items_by_path ON items(drive_id, deleted, path COLLATE NOCASE);
CREATE INDEX IF NOT EXISTS items_by_list_item ON items(drive_id, list_item_id);
CREATE TABLE IF NOT EXISTS versions(
    item_id TEXT NOT NULL, major INTEGER NOT NULL, content BLOB NOT NULL, size INTEGER NOT NULL,
    sha256 TEXT NOT NULL, modified_at TEXT NOT NULL, modified_by TEXT NOT NULL,
    PRIMARY KEY(item_id, major));
CREATE TABLE IF NOT EXISTS change_times(seq INTEGER PRIMARY KEY, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS delta_snapshots(
    id TEXT PRIMARY KEY, drive_id TEXT NOT NULL, upto_seq INTEGER NOT NULL, size INTEGER NOT NULL,
    created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS delta_snapshot_items(
    snapshot_id TEXT NOT NULL, ord INTEGER NOT NULL, item_id TEXT NOT NULL,
    PRIMARY KEY(snapshot_id, ord)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS list_items(
    list_id TEXT NOT NULL, id INTEGER NOT NULL, uid TEXT NOT NULL, fields TEXT NOT NULL,
    created_at TEXT NOT NULL, created_by TEXT NOT NULL, modified_at TEXT NOT NULL,
    modified_by TEXT NOT NULL, version INTEGER NOT NULL DEFAULT 1, PRIMARY KEY(list_id, id));
CREATE TABLE IF NOT EXISTS principals(
    id INTEGER NOT NULL, site_id TEXT NOT NULL, kind TEXT NOT NULL, login_name TEXT NOT NULL
    COLLATE NOCASE, title TEXT NOT NULL, email TEXT NOT NULL DEFAULT '', upn TEXT,
    directory_id TEXT, owner_id INTEGER, description TEXT NOT NULL DEFAULT '',
    hidden INTEGER NOT NULL DEFAULT 0, is_site_admin INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY(site_id, id), UNIQUE(site_id, login_name));
CREATE TABLE IF NOT EXISTS site_group_members(
    site_id TEXT NOT NULL, group_id INTEGER NOT NULL, principal_id INTEGER NOT NULL,
    PRIMARY KEY(site_id, group_id, principal_id));
CREATE TABLE IF NOT EXISTS role_definitions(
    id INTEGER NOT NULL, site_id TEXT NOT NULL, name TEXT NOT NULL COLLATE NOCASE,
    role_type_kind INTEGER NOT NULL, description TEXT NOT NULL, ord INTEGER NOT NULL,
    perm_low INTEGER NOT NULL, perm_high INTEGER NOT NULL, hidden INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY(site_id, id));
CREATE TABLE IF NOT EXISTS scopes(scope_key TEXT PRIMARY KEY, site_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS role_assignments(
    scope_key TEXT NOT NULL, principal_id INTEGER NOT NULL, roledef_id INTEGER NOT NULL,
    PRIMARY KEY(scope_key, principal_id, roledef_id));
CREATE TABLE IF NOT EXISTS sharing_links(
    id TEXT PRIMARY KEY, item_id TEXT NOT NULL, type TEXT NOT NULL, scope TEXT NOT NULL,
    group_principal_id INTEGER NOT NULL, created_at TEXT NOT NULL, created_by TEXT NOT NULL,
    expiration TEXT, has_password INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS subscriptions(
    id TEXT PRIMARY KEY, client_id TEXT NOT NULL, resource TEXT NOT NULL,
    change_type TEXT NOT NULL, notification_url TEXT NOT NULL, client_state TEXT,
    expiration TEXT NOT NULL, lifecycle_url TEXT, created_at TEXT NOT NULL,
    drive_id TEXT, latest_tls TEXT, challenged_at TEXT, include_security INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS upload_sessions(
    id TEXT PRIMARY KEY, drive_id TEXT NOT NULL, parent_id TEXT NOT NULL, name TEXT NOT NULL,
    conflict TEXT NOT NULL, total INTEGER, received BLOB NOT NULL DEFAULT x'',
    expires TEXT NOT NULL, defer_commit INTEGER NOT NULL DEFAULT 0, client_id TEXT NOT NULL,
    description TEXT);
CREATE TABLE IF NOT EXISTS teams_channels(
    name TEXT PRIMARY KEY, webhook_id TEXT NOT NULL UNIQUE, display_name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS teams_messages(
    id INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL, received_at TEXT NOT NULL,
    size INTEGER NOT NULL, body TEXT NOT NULL, status TEXT NOT NULL, reason TEXT);
"""

# SharePoint's built-in permission levels: (id, name, RoleTypeKind, order, description,
# BasePermissions low/high). Ids are the well-known defaults every new site gets.
BUILTIN_ROLE_DEFINITIONS: tuple[tuple[int, str, int, int, str, int, int, bool], ...] = (
    (1073741829, "Full Control", 5, 1, "Has full control.", 4294967295, 2147483647, False),
    (1073741828, "Design", 4, 32, "Can view, add, update, delete, approve, and customize.",
     432902113, 375, False),
    (1073741830, "Edit", 6, 48, "Can add, edit and delete lists; can view, add, update and "
     "delete list items and documents.", 1011030767, 432, False),
    (1073741827, "Contribute", 3, 64, "Can view, add, update, and delete list items and "
     "documents.", 1011028719, 432, False),
    (1073741826, "Read", 2, 128, "Can view pages and list items and download documents.",
     138612833, 176, False),
    (1073741825, "Limited Access", 1, 160, "Can view specific lists, document libraries, list "
     "items, folders, or documents when given permissions.", 134287360, 0, True),
    (1073741924, "View Only", 0, 2147483647, "Can view pages, list items, and documents. "
     "Document types with server-side file handlers can be viewed in the browser but not "
     "downloaded.", 138608641, 176, False),
)
FULL_CONTROL, DESIGN, EDIT, CONTRIBUTE, READ, LIMITED_ACCESS, VIEW_ONLY = (
    r[0] for r in BUILTIN_ROLE_DEFINITIONS
)
#: The principal id SharePoint gives the "System Account" on every site.
SYSTEM_ACCOUNT_ID = 1073741823


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime | None = None) -> str:
    """Graph's timestamp form: UTC with a ``Z`` and no fractional noise beyond ms."""
    value = ts or utcnow()
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def new_item_id() -> str:
    """A driveItem id shaped like SharePoint's: ``01`` and 32 base32 characters."""
    return "01" + "".join(secrets.choice(_B32) for _ in range(32))


def new_guid() -> str:
    return str(uuid.uuid4())


def drive_id_for(site_guid: str, web_guid: str, list_guid: str) -> str:
    """SharePoint drive ids are ``b!`` and the base64url of the site, web and list GUIDs."""
    raw = uuid.UUID(site_guid).bytes_le + uuid.UUID(web_guid).bytes_le + uuid.UUID(list_guid).bytes_le
    return "b!" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


@dataclasses.dataclass(frozen=True)
class App:
    """An app registration (service principal) and its application permissions."""

    client_id: str
    display_name: str
    cert_pem: str | None
    secret_sha256: str | None
    roles: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Site:
    id: str
    hostname: str
    server_relative_url: str
    title: str
    description: str
    site_guid: str
    web_guid: str
    created_at: str

    @property
    def scope_key(self) -> str:
        return f"web:{self.id}"


@dataclasses.dataclass(frozen=True)
class ListRecord:
    id: str
    site_id: str
    title: str
    url_name: str
    base_template: int
    entity_type_name: str
    description: str
    drive_id: str | None
    created_at: str
    modified_at: str
    fields: tuple[dict[str, Any], ...]

    @property
    def scope_key(self) -> str:
        return f"list:{self.id}"

    @property
    def item_type_name(self) -> str:
        return f"SP.Data.{self.entity_type_name}Item"


@dataclasses.dataclass(frozen=True)
class Drive:
    id: str
    site_id: str
    list_id: str
    name: str
    created_at: str
    delta_generation: int


@dataclasses.dataclass(frozen=True)
class Item:
    """A driveItem. ``path`` is drive-relative: ``""`` for the root, ``/A/b.txt`` below it."""

    id: str
    drive_id: str
    parent_id: str | None
    name: str
    is_folder: bool
    path: str
    uid: str
    list_item_id: int
    size: int
    sha256: str | None
    mime: str | None
    etag_no: int
    ctag_no: int
    major: int
    created_at: str
    created_by: str
    modified_at: str
    modified_by: str
    deleted: bool
    seq: int
    fields: dict[str, Any]
    description: str | None
    quick_xor: str | None = None

    @property
    def is_root(self) -> bool:
        return self.parent_id is None

    @property
    def scope_key(self) -> str:
        return f"item:{self.id}"

    @property
    def etag(self) -> str:
        return f'"{{{self.uid.upper()}}},{self.etag_no}"'

    @property
    def ctag(self) -> str:
        return f'"c:{{{self.uid.upper()}}},{self.ctag_no}"'


@dataclasses.dataclass(frozen=True)
class Version:
    item_id: str
    major: int
    size: int
    sha256: str
    modified_at: str
    modified_by: str

    @property
    def label(self) -> str:
        return f"{self.major}.0"


@dataclasses.dataclass(frozen=True)
class Principal:
    """A SharePoint site principal. ``kind``: user, group (site group), secgroup, app."""

    id: int
    site_id: str
    kind: str
    login_name: str
    title: str
    email: str
    upn: str | None
    directory_id: str | None
    owner_id: int | None
    description: str
    hidden: bool
    is_site_admin: bool

    @property
    def principal_type(self) -> int:
        """SP.Utilities.PrincipalType: 1 user, 4 security group, 8 SharePoint group."""
        return {"user": 1, "app": 1, "secgroup": 4, "group": 8}[self.kind]


@dataclasses.dataclass(frozen=True)
class RoleDefinition:
    id: int
    name: str
    role_type_kind: int
    description: str
    order: int
    perm_low: int
    perm_high: int
    hidden: bool


@dataclasses.dataclass(frozen=True)
class SharingLink:
    id: str
    item_id: str
    type: str
    scope: str
    group_principal_id: int
    created_at: str
    created_by: str
    expiration: str | None
    has_password: bool


@dataclasses.dataclass(frozen=True)
class Subscription:
    id: str
    client_id: str
    resource: str
    change_type: str
    notification_url: str
    client_state: str | None
    expiration: str
    lifecycle_url: str | None
    created_at: str
    drive_id: str | None
    latest_tls: str | None
    #: when a reauthorization was required and not yet answered: notifications are paused meanwhile
    challenged_at: str | None = None
    #: created with ``Prefer: includesecuritywebhooks``: permission changes are notified too
    include_security: bool = False


@dataclasses.dataclass(frozen=True)
class UploadSession:
    """A Graph resumable upload (createUploadSession): bytes received so far, in order."""

    id: str
    drive_id: str
    parent_id: str
    name: str
    conflict: str
    total: int | None
    received: int
    expires: str
    defer_commit: bool
    client_id: str
    description: str | None


class StateError(Exception):
    """A precondition of the model failed; ``code`` is Graph's error code for it."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class NotFound(StateError):
    def __init__(self, message: str = "The resource could not be found.") -> None:
        super().__init__(404, "itemNotFound", message)


class NameConflict(StateError):
    def __init__(self, message: str) -> None:
        super().__init__(409, "nameAlreadyExists", message)


_T = TypeVar("_T")


def _row_to(cls: type[_T], row: sqlite3.Row) -> _T:
    return cls(**{k: row[k] for k in row.keys()})  # noqa: SIM118 - sqlite3.Row has no __iter__ keys


def _subscription(row: sqlite3.Row) -> Subscription:
    sub = _row_to(Subscription, row)
    return dataclasses.replace(sub, include_security=bool(sub.include_security))


def _opt_row_to(cls: type[_T], row: sqlite3.Row | None) -> _T | None:
    return None if row is None else _row_to(cls, row)


# Names SharePoint refuses (support.microsoft.com "Restrictions and limitations in OneDrive and
# SharePoint"); checked on every create and rename so clients meet the same failures as online.
_INVALID_CHARS = set('"*:<>?/\\|')
_RESERVED_NAMES = {".lock", "con", "prn", "aux", "nul", "desktop.ini",
                   *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
MAX_PATH_LENGTH = 400


def check_name(name: str) -> None:
    """Raise 400 invalidRequest when SharePoint would refuse ``name`` for a file or folder."""
    problem = None
    if not name or name != name.strip():
        problem = "must not be empty or start or end with a space"
    elif any(c in _INVALID_CHARS for c in name):
        problem = 'must not contain any of " * : < > ? / \\ |'
    elif name.lower() in _RESERVED_NAMES or name.startswith("~$") or "_vti_" in name.lower():
        problem = "is reserved by SharePoint"
    elif len(name) > 255:
        problem = "is longer than 255 characters"
    if problem:
        raise StateError(400, "invalidRequest", f"The name '{name}' {problem}.")


class State:
    """The tenant model over one SQLite connection (see the module docstring)."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=OFF")
        self.db.executescript(_SCHEMA)
        self._depth = 0
        #: drives whose permissions changed since ``take_security_changes`` (for security webhooks)
        self._security_changed: set[str] = set()
        if self.meta("schema_version") is None:
            self.set_meta("schema_version", str(SCHEMA_VERSION))
        self._upgrade()

    def _upgrade(self) -> None:
        """Bring a data directory written by an older tenant up to SCHEMA_VERSION, in one transaction."""
        version = int(self.meta("schema_version") or SCHEMA_VERSION)
        if version >= SCHEMA_VERSION:
            return
        with self.transaction():
            if version < 2:
                self.x("ALTER TABLE items ADD COLUMN quick_xor TEXT")
                current = self.q("SELECT v.item_id, v.content FROM items i JOIN versions v "
                                 "ON v.item_id = i.id AND v.major = i.major WHERE i.is_folder = 0")
                self.db.executemany("UPDATE items SET quick_xor=? WHERE id=?",
                                    ((quick_xor_hash(bytes(r["content"])), r["item_id"]) for r in current))
            if version < 3:
                self.x("ALTER TABLE subscriptions ADD COLUMN challenged_at TEXT")
            if version < 4:
                self.x("ALTER TABLE subscriptions ADD COLUMN include_security INTEGER NOT NULL DEFAULT 0")
            self.set_meta("schema_version", str(SCHEMA_VERSION))

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------ plumbing
    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes; nested use joins the outer transaction."""
        if self._depth == 0:
            self.db.execute("BEGIN IMMEDIATE")
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            if self._depth == 0:
                self.db.execute("ROLLBACK")
            raise
        self._depth -= 1
        if self._depth == 0:
            self.db.execute("COMMIT")

    def q(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        return self.db.execute(sql, params).fetchall()

    def q1(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.db.execute(sql, params).fetchone()
        return row

    def x(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Cursor:
        return self.db.execute(sql, params)

    def meta(self, key: str) -> str | None:
        row = self.q1("SELECT value FROM meta WHERE key=?", (key,))
        return None if row is None else str(row["value"])

    def set_meta(self, key: str, value: str) -> None:
        self.x("INSERT INTO meta(key,value) VALUES(?,?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
               (key, value))

    def next_seq(self) -> int:
        """Stamp one change: the next position in the tenant-wide change sequence."""
        current = int(self.meta("seq") or "0") + 1
        self.set_meta("seq", str(current))
        self.x("INSERT INTO change_times(seq, at) VALUES(?,?)", (current, iso()))
        return current

    def current_seq(self) -> int:
        return int(self.meta("seq") or "0")

    def seq_at(self, when: datetime) -> int:
        """The last change position before ``when`` (for timestamp delta tokens)."""
        row = self.q1("SELECT MAX(seq) AS s FROM change_times WHERE at < ?", (iso(when),))
        return int(row["s"] or 0) if row else 0

    # ------------------------------------------------------------------ apps
    def add_app(self, client_id: str, display_name: str, *, cert_pem: str | None = None,
                secret: str | None = None, roles: Sequence[str] = ()) -> App:
        digest = hashlib.sha256(secret.encode()).hexdigest() if secret else None
        self.x("INSERT OR REPLACE INTO apps VALUES(?,?,?,?,?)",
               (client_id, display_name, cert_pem, digest, json.dumps(list(roles))))
        return App(client_id, display_name, cert_pem, digest, tuple(roles))

    def get_app(self, client_id: str) -> App | None:
        row = self.q1("SELECT * FROM apps WHERE client_id=?", (client_id,))
        if row is None:
            return None
        return App(row["client_id"], row["display_name"], row["cert_pem"], row["secret_sha256"],
                   tuple(json.loads(row["roles"])))

    def site_grants(self, site_id: str) -> list[dict[str, Any]]:
        return [dict(r) | {"roles": json.loads(r["roles"])}
                for r in self.q("SELECT * FROM site_grants WHERE site_id=? ORDER BY rowid", (site_id,))]

    def add_site_grant(self, site_id: str, client_id: str, display_name: str,
                       roles: Sequence[str]) -> dict[str, Any]:
        existing = self.q1("SELECT id FROM site_grants WHERE site_id=? AND client_id=?", (site_id, client_id))
        grant_id = existing["id"] if existing else base64.b64encode(
            f"i:0i.t|ms.sp.ext|{client_id}@{self.meta('tenant_id')}".encode()).decode()
        self.x("INSERT OR REPLACE INTO site_grants VALUES(?,?,?,?,?)",
               (grant_id, site_id, client_id, display_name, json.dumps(list(roles))))
        return {"id": grant_id, "site_id": site_id, "client_id": client_id,
                "display_name": display_name, "roles": list(roles)}

    def delete_site_grant(self, site_id: str, grant_id: str) -> bool:
        return self.x("DELETE FROM site_grants WHERE site_id=? AND id=?", (site_id, grant_id)).rowcount > 0

    def app_site_roles(self, client_id: str, site_id: str) -> set[str]:
        row = self.q1("SELECT roles FROM site_grants WHERE site_id=? AND client_id=?", (site_id, client_id))
        return set(json.loads(row["roles"])) if row else set()

    def expose_api(self, client_id: str, identifier_uri: str, roles: Sequence[str]) -> None:
        """An app registration exposes an API: its Application ID URI and the app roles it defines."""
        self.x("INSERT OR REPLACE INTO app_apis VALUES(?,?,?)", (identifier_uri, client_id, json.dumps(list(roles))))

    def api_for_resource(self, resource: str) -> tuple[str, str, tuple[str, ...]] | None:
        """(client id, identifier URI, defined roles) of the API a scope's resource names: its
        Application ID URI, or its client id (both are valid resource identifiers in Entra ID)."""
        row = self.q1("SELECT * FROM app_apis WHERE identifier_uri=? OR client_id=? LIMIT 1", (resource, resource))
        return (row["client_id"], row["identifier_uri"], tuple(json.loads(row["roles"]))) if row else None

    def assign_app_role(self, client_id: str, resource_client_id: str, role: str) -> None:
        """Grant (admin consent) an app role of an API to a client app's service principal."""
        self.x("INSERT OR REPLACE INTO app_role_assignments VALUES(?,?,?)", (client_id, resource_client_id, role))

    def assigned_roles(self, client_id: str, resource_client_id: str) -> list[str]:
        return [r["role"] for r in self.q("SELECT role FROM app_role_assignments WHERE client_id=? AND "
                                          "resource_client_id=? ORDER BY role", (client_id, resource_client_id))]

    def app_by_display_name(self, display_name: str) -> App | None:
        """The app registered under ``display_name`` (how createdBy names an app-only caller)."""
        row = self.q1("SELECT client_id FROM apps WHERE display_name=? ORDER BY rowid LIMIT 1", (display_name,))
        return self.get_app(row["client_id"]) if row else None

    # ------------------------------------------------------------------ directory
    def add_user(self, upn: str, display_name: str, *, user_type: str = "Member", mail: str | None = None,
                 given_name: str | None = None, surname: str | None = None, job_title: str | None = None,
                 department: str | None = None, country: str | None = None, id: str | None = None) -> str:
        user_id = id or new_guid()
        self.x("INSERT INTO users(id,upn,display_name,mail,user_type,given_name,surname,job_title,"
               "department,country) VALUES(?,?,?,?,?,?,?,?,?,?)",
               (user_id, upn, display_name, mail or upn, user_type, given_name, surname, job_title,
                department, country))
        return user_id

    def user(self, key: str) -> dict[str, Any] | None:
        """A directory user by object id, UPN or mail (case-insensitive)."""
        row = self.q1("SELECT * FROM users WHERE id=? OR upn=? COLLATE NOCASE OR mail=? COLLATE NOCASE",
                      (key, key, key))
        return dict(row) if row else None

    def users(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.q("SELECT * FROM users ORDER BY display_name")]

    def add_group(self, display_name: str, mail_nickname: str, *, description: str | None = None,
                  security_enabled: bool = True, mail_enabled: bool = False, id: str | None = None) -> str:
        group_id = id or new_guid()
        self.x("INSERT INTO groups VALUES(?,?,?,?,?,?)",
               (group_id, display_name, mail_nickname, description, int(security_enabled), int(mail_enabled)))
        return group_id

    def group(self, group_id: str) -> dict[str, Any] | None:
        row = self.q1("SELECT * FROM groups WHERE id=?", (group_id,))
        return dict(row) if row else None

    def groups(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.q("SELECT * FROM groups ORDER BY display_name")]

    def add_group_member(self, group_id: str, member_id: str) -> None:
        self.x("INSERT OR IGNORE INTO group_members VALUES(?,?)", (group_id, member_id))

    def remove_group_member(self, group_id: str, member_id: str) -> bool:
        return self.x("DELETE FROM group_members WHERE group_id=? AND member_id=?",
                      (group_id, member_id)).rowcount > 0

    def group_member_ids(self, group_id: str) -> list[str]:
        return [r["member_id"] for r in
                self.q("SELECT member_id FROM group_members WHERE group_id=? ORDER BY rowid", (group_id,))]

    # ------------------------------------------------------------------ sites, lists, drives
    def create_site(self, hostname: str, server_relative_url: str, title: str, *,
                    description: str = "") -> Site:
        site_guid, web_guid = new_guid(), new_guid()
        site = Site(f"{hostname},{site_guid},{web_guid}", hostname, server_relative_url.rstrip("/"),
                    title, description, site_guid, web_guid, iso())
        with self.transaction():
            self.x("INSERT INTO sites VALUES(?,?,?,?,?,?,?,?)", dataclasses.astuple(site))
            for rd in BUILTIN_ROLE_DEFINITIONS:
                self.x("INSERT INTO role_definitions VALUES(?,?,?,?,?,?,?,?,?)",
                       (rd[0], site.id, rd[1], rd[2], rd[4], rd[3], rd[5], rd[6], int(rd[7])))
            self.x("INSERT INTO scopes VALUES(?,?)", (site.scope_key, site.id))
            self.add_principal(site.id, "user", "SHAREPOINT\\system", "System Account",
                               id=SYSTEM_ACCOUNT_ID, is_site_admin=True)
            owners = self.add_principal(site.id, "group", f"{title} Owners", f"{title} Owners", id=3)
            visitors = self.add_principal(site.id, "group", f"{title} Visitors", f"{title} Visitors", id=4)
            members = self.add_principal(site.id, "group", f"{title} Members", f"{title} Members", id=5)
            for group, role in ((owners, FULL_CONTROL), (members, EDIT), (visitors, READ)):
                self.x("UPDATE principals SET owner_id=? WHERE site_id=? AND id=?", (owners.id, site.id, group.id))
                self.add_role_assignment(site.scope_key, group.id, role)
            self.set_meta(f"next_principal:{site.id}", "6")
        return site

    def site(self, key: str) -> Site | None:
        row = self.q1("SELECT * FROM sites WHERE id=? OR server_relative_url=? COLLATE NOCASE", (key, key))
        return _row_to(Site, row) if row else None

    def site_by_guid(self, guid: str) -> Site | None:
        row = self.q1("SELECT * FROM sites WHERE site_guid=? COLLATE NOCASE", (guid,))
        return _row_to(Site, row) if row else None

    def sites(self) -> list[Site]:
        return [_row_to(Site, r) for r in self.q("SELECT * FROM sites ORDER BY created_at")]

    def create_list(self, site: Site, title: str, *, base_template: int = 100, url_name: str | None = None,
                    description: str = "", drive_name: str | None = None) -> ListRecord:
        """A list (template 100) or, for template 101, a document library with its drive."""
        if self.q1("SELECT 1 FROM lists WHERE site_id=? AND title=?", (site.id, title)):
            raise StateError(409, "nameAlreadyExists",
                             f"A list, survey, discussion board, or document library with the "
                             f"specified title '{title}' already exists in this Web site.")
        list_id = new_guid()
        url = url_name or title.replace(" ", "")
        entity = url.replace(" ", "_x0020_") if base_template == 101 else f"{url.replace(' ', '_x0020_')}List"
        now = iso()
        with self.transaction():
            drive_id = drive_id_for(site.site_guid, site.web_guid, list_id) if base_template == 101 else None
            self.x("INSERT INTO lists(id,site_id,title,url_name,base_template,entity_type_name,description,"
                   "drive_id,created_at,modified_at) VALUES(?,?,?,?,?,?,?,?,?,?)",
                   (list_id, site.id, title, url, base_template, entity, description, drive_id, now, now))
            if drive_id:
                self.x("INSERT INTO drives VALUES(?,?,?,?,?,1)", (drive_id, site.id, list_id, drive_name or title, now))
                root_id = new_item_id()
                self.x("INSERT INTO items(id,drive_id,parent_id,name,is_folder,path,uid,list_item_id,created_at,"
                       "created_by,modified_at,modified_by,seq) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)",
                       (root_id, drive_id, None, "root", 1, "", new_guid(), 0, now, "System Account",
                        now, "System Account", self.next_seq()))
        record = self.get_list(site.id, list_id)
        assert record is not None
        return record

    def get_list(self, site_id: str, key: str) -> ListRecord | None:
        """A list by GUID, title or URL name (case-insensitive)."""
        row = self.q1("SELECT * FROM lists WHERE site_id=? AND (id=? COLLATE NOCASE OR title=? COLLATE NOCASE "
                      "OR url_name=? COLLATE NOCASE)", (site_id, key.strip("{}"), key, key))
        return self._list_from(row) if row else None

    def lists(self, site_id: str) -> list[ListRecord]:
        return [self._list_from(r) for r in self.q("SELECT * FROM lists WHERE site_id=? ORDER BY created_at",
                                                    (site_id,))]

    def _list_from(self, row: sqlite3.Row) -> ListRecord:
        return ListRecord(row["id"], row["site_id"], row["title"], row["url_name"], row["base_template"],
                          row["entity_type_name"], row["description"], row["drive_id"], row["created_at"],
                          row["modified_at"], tuple(json.loads(row["fields"])))

    def drive(self, drive_id: str) -> Drive | None:
        return _opt_row_to(Drive, self.q1("SELECT * FROM drives WHERE id=?", (drive_id,)))

    def drives(self, site_id: str) -> list[Drive]:
        return [_row_to(Drive, r) for r in self.q("SELECT * FROM drives WHERE site_id=? ORDER BY created_at",
                                                   (site_id,))]

    def bump_delta_generation(self, drive_id: str) -> None:
        """Invalidate every delta token issued so far for the drive (their next use gets 410)."""
        self.x("UPDATE drives SET delta_generation=delta_generation+1 WHERE id=?", (drive_id,))

    # ------------------------------------------------------------------ items
    def _item(self, row: sqlite3.Row | None) -> Item | None:
        if row is None:
            return None
        data = {k: row[k] for k in row.keys()}  # noqa: SIM118
        data["is_folder"] = bool(data["is_folder"])
        data["deleted"] = bool(data["deleted"])
        data["fields"] = json.loads(data["fields"])
        return Item(**data)

    def item(self, drive_id: str, item_id: str, *, include_deleted: bool = False) -> Item | None:
        row = self.q1("SELECT * FROM items WHERE id=? AND drive_id=?", (item_id, drive_id))
        found = self._item(row)
        if found is None or (found.deleted and not include_deleted):
            return None
        return found

    def item_any_drive(self, item_id: str) -> Item | None:
        found = self._item(self.q1("SELECT * FROM items WHERE id=?", (item_id,)))
        return None if found is None or found.deleted else found

    def root(self, drive_id: str) -> Item:
        found = self._item(self.q1("SELECT * FROM items WHERE drive_id=? AND parent_id IS NULL", (drive_id,)))
        if found is None:
            raise NotFound("The drive has no root.")
        return found

    def item_by_path(self, drive_id: str, path: str) -> Item | None:
        """The live item at a drive-relative path (``""``, ``/`` or ``A/B``; case-insensitive)."""
        norm = "/" + path.strip("/") if path.strip("/") else ""
        row = self.q1("SELECT * FROM items WHERE drive_id=? AND deleted=0 AND path=? COLLATE NOCASE",
                      (drive_id, norm))
        return self._item(row)

    def item_by_list_item_id(self, drive_id: str, list_item_id: int) -> Item | None:
        row = self.q1("SELECT * FROM items WHERE drive_id=? AND list_item_id=? AND deleted=0",
                      (drive_id, list_item_id))
        return self._item(row)

    def children(self, item: Item, *, after_name: str | None = None, limit: int = 200,
                 folders_first: bool = False) -> list[Item]:
        order = "is_folder DESC, name COLLATE NOCASE" if folders_first else "name COLLATE NOCASE"
        if after_name is None:
            rows = self.q(f"SELECT * FROM items WHERE parent_id=? AND deleted=0 ORDER BY {order} LIMIT ?",  # noqa: S608
                          (item.id, limit))
        else:
            rows = self.q("SELECT * FROM items WHERE parent_id=? AND deleted=0 AND name > ? COLLATE NOCASE "
                          "ORDER BY name COLLATE NOCASE LIMIT ?", (item.id, after_name, limit))
        return [i for i in map(self._item, rows) if i is not None]

    def child_count(self, item: Item) -> int:
        row = self.q1("SELECT COUNT(*) AS n FROM items WHERE parent_id=? AND deleted=0", (item.id,))
        return int(row["n"]) if row else 0

    def child_named(self, parent: Item, name: str) -> Item | None:
        row = self.q1("SELECT * FROM items WHERE parent_id=? AND deleted=0 AND name=? COLLATE NOCASE",
                      (parent.id, name))
        return self._item(row)

    def ancestors(self, item: Item) -> list[Item]:
        """From the item's parent up to the root."""
        chain: list[Item] = []
        current = item
        while current.parent_id is not None:
            parent = self._item(self.q1("SELECT * FROM items WHERE id=?", (current.parent_id,)))
            if parent is None:
                break
            chain.append(parent)
            current = parent
        return chain

    def folder_size(self, item: Item) -> int:
        if not item.is_folder:
            return item.size
        like = item.path.replace("%", "\\%").replace("_", "\\_") + "/%"
        row = self.q1("SELECT COALESCE(SUM(size),0) AS s FROM items WHERE drive_id=? AND deleted=0 AND is_folder=0 "
                      "AND path LIKE ? ESCAPE '\\'", (item.drive_id, like))
        return int(row["s"]) if row else 0

    def _next_list_item_id(self, list_id: str) -> int:
        row = self.q1("SELECT next_item_id FROM lists WHERE id=?", (list_id,))
        assert row is not None
        value = int(row["next_item_id"])
        self.x("UPDATE lists SET next_item_id=? WHERE id=?", (value + 1, list_id))
        return value

    def unique_name(self, parent: Item, name: str) -> str:
        """SharePoint's ``rename`` conflict behaviour: ``a.txt`` → ``a 1.txt``, ``a 2.txt`` …"""
        if self.child_named(parent, name) is None:
            return name
        stem, dot, ext = name.rpartition(".")
        if not dot or not stem:
            stem, ext = name, ""
        n = 1
        while True:
            candidate = f"{stem} {n}.{ext}" if ext else f"{stem} {n}"
            if self.child_named(parent, candidate) is None:
                return candidate
            n += 1

    def _resolve_conflict(self, parent: Item, name: str, conflict: str) -> tuple[str, Item | None]:
        """Apply ``@microsoft.graph.conflictBehavior``; returns the name to use and any item to replace."""
        existing = self.child_named(parent, name)
        if existing is None:
            return name, None
        if conflict == "fail":
            raise NameConflict(f"An item with the name '{name}' already exists in the folder.")
        if conflict == "rename":
            return self.unique_name(parent, name), None
        return name, existing

    def _check_path_length(self, parent: Item, name: str) -> None:
        drive = self.drive(parent.drive_id)
        assert drive is not None
        lst = self.q1("SELECT l.url_name, s.server_relative_url FROM lists l JOIN sites s ON s.id=l.site_id "
                      "WHERE l.id=?", (drive.list_id,))
        assert lst is not None
        full = f"{lst['url_name']}{parent.path}/{name}"
        if len(full) > MAX_PATH_LENGTH:
            raise StateError(400, "invalidRequest",
                             f"The path '{full[:60]}…' is {len(full)} characters; SharePoint allows "
                             f"{MAX_PATH_LENGTH}.")

    def create_folder(self, parent: Item, name: str, *, by: str, conflict: str = "fail") -> Item:
        if not parent.is_folder:
            raise StateError(400, "invalidRequest", "The parent of a folder must be a folder.")
        check_name(name)
        with self.transaction():
            name, existing = self._resolve_conflict(parent, name, conflict)
            if existing is not None:
                if existing.is_folder:
                    return existing  # "replace" on a folder keeps the folder (SharePoint does not empty it)
                self.delete_item(existing, by=by)
            self._check_path_length(parent, name)
            return self._insert_item(parent, name, is_folder=True, by=by)

    def _insert_item(self, parent: Item, name: str, *, is_folder: bool, by: str,
                     content: bytes | None = None, mime: str | None = None,
                     description: str | None = None) -> Item:
        drive = self.drive(parent.drive_id)
        assert drive is not None
        item_id, now = new_item_id(), iso()
        data = content or b""
        digest = hashlib.sha256(data).hexdigest() if not is_folder else None
        self.x("INSERT INTO items(id,drive_id,parent_id,name,is_folder,path,uid,list_item_id,size,sha256,mime,"
               "major,created_at,created_by,modified_at,modified_by,seq,description,quick_xor) "
               "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
               (item_id, parent.drive_id, parent.id, name, int(is_folder), f"{parent.path}/{name}", new_guid(),
                self._next_list_item_id(drive.list_id), len(data), digest, mime, 0 if is_folder else 1,
                now, by, now, by, self.next_seq(), description, None if is_folder else quick_xor_hash(data)))
        if not is_folder:
            self.x("INSERT INTO versions VALUES(?,?,?,?,?,?,?)", (item_id, 1, data, len(data), digest, now, by))
        self._touch_parent(parent)
        created = self.item(parent.drive_id, item_id)
        assert created is not None
        return created

    def _touch_parent(self, parent: Item) -> None:
        # A folder's eTag and seq don't change for child-derived properties (driveitem.md), but its
        # lastModifiedDateTime does in SharePoint; we keep it simple and leave the folder as is.
        del parent

    def put_file(self, parent: Item, name: str, content: bytes, *, by: str, conflict: str = "replace",
                 mime: str | None = None, if_match: str | None = None) -> tuple[Item, bool]:
        """Create or overwrite a file; returns the item and whether it was created."""
        check_name(name)
        with self.transaction():
            name, existing = self._resolve_conflict(parent, name, conflict)
            if existing is not None:
                if existing.is_folder:
                    raise StateError(409, "nameAlreadyExists",
                                     f"A folder with the name '{name}' already exists.")
                return self.overwrite(existing, content, by=by, if_match=if_match), False
            self._check_path_length(parent, name)
            return self._insert_item(parent, name, is_folder=False, by=by, content=content, mime=mime), True

    def check_if_match(self, item: Item, if_match: str | None) -> None:
        if if_match and if_match.strip() != "*" and if_match.strip() not in (item.etag, item.ctag):
            raise StateError(412, "resourceModified", "ETag does not match current item's value")

    def overwrite(self, item: Item, content: bytes, *, by: str, if_match: str | None = None) -> Item:
        """New content for a file: a new major version, new eTag and cTag."""
        if item.is_folder:
            raise StateError(400, "invalidRequest", "Cannot upload content to an item representing a folder")
        self.check_if_match(item, if_match)
        now, digest, major = iso(), hashlib.sha256(content).hexdigest(), item.major + 1
        with self.transaction():
            self.x("INSERT INTO versions VALUES(?,?,?,?,?,?,?)", (item.id, major, content, len(content), digest,
                                                                   now, by))
            self.x("UPDATE items SET size=?, sha256=?, quick_xor=?, major=?, etag_no=etag_no+1, ctag_no=ctag_no+1, "
                   "modified_at=?, modified_by=?, seq=? WHERE id=?",
                   (len(content), digest, quick_xor_hash(content), major, now, by, self.next_seq(), item.id))
        updated = self.item(item.drive_id, item.id)
        assert updated is not None
        return updated

    def content(self, item: Item, major: int | None = None) -> bytes:
        row = self.q1("SELECT content FROM versions WHERE item_id=? AND major=?", (item.id, major or item.major))
        if row is None:
            raise NotFound("The version could not be found.")
        return bytes(row["content"])

    def versions(self, item: Item) -> list[Version]:
        rows = self.q("SELECT item_id, major, size, sha256, modified_at, modified_by FROM versions "
                      "WHERE item_id=? ORDER BY major DESC", (item.id,))
        return [_row_to(Version, r) for r in rows]

    def restore_version(self, item: Item, major: int, *, by: str) -> Item:
        """Restoring makes the old content current again as a new major version, as SharePoint does."""
        return self.overwrite(item, self.content(item, major), by=by)

    def update_item(self, item: Item, *, by: str, name: str | None = None, new_parent: Item | None = None,
                    description: str | None = None, conflict: str = "fail",
                    if_match: str | None = None) -> Item:
        """Rename and/or move; descendants' paths follow (without new change stamps, as in Graph)."""
        if item.is_root:
            raise StateError(400, "invalidRequest", "The root folder cannot be renamed or moved.")
        self.check_if_match(item, if_match)
        target_parent = new_parent or self._item(self.q1("SELECT * FROM items WHERE id=?", (item.parent_id,)))
        assert target_parent is not None
        target_name = name if name is not None else item.name
        check_name(target_name)
        if new_parent is not None:
            if not new_parent.is_folder:
                raise StateError(400, "invalidRequest", "The destination is not a folder.")
            if new_parent.id == item.id or new_parent.path.lower().startswith(item.path.lower() + "/"):
                raise StateError(400, "invalidRequest", "A folder cannot be moved into itself.")
        with self.transaction():
            clash = self.child_named(target_parent, target_name)
            if clash is not None and clash.id != item.id:
                if conflict == "rename":
                    target_name = self.unique_name(target_parent, target_name)
                elif conflict == "replace" and not clash.is_folder:
                    self.delete_item(clash, by=by)
                else:
                    raise NameConflict(f"An item with the name '{target_name}' already exists.")
            self._check_path_length(target_parent, target_name)
            new_path = f"{target_parent.path}/{target_name}"
            if item.is_folder and new_path != item.path:
                old_prefix = item.path + "/"
                self.x("UPDATE items SET path=? || substr(path, ?) WHERE drive_id=? AND substr(path,1,?)=?",
                       (new_path + "/", len(old_prefix) + 1, item.drive_id, len(old_prefix), old_prefix))
            self.x("UPDATE items SET name=?, parent_id=?, path=?, description=COALESCE(?, description), "
                   "etag_no=etag_no+1, modified_at=?, modified_by=?, seq=? WHERE id=?",
                   (target_name, target_parent.id, new_path, description, iso(), by, self.next_seq(), item.id))
        updated = self.item(item.drive_id, item.id)
        assert updated is not None
        return updated

    def descendants(self, item: Item) -> list[Item]:
        if not item.is_folder:
            return []
        prefix = item.path + "/"
        rows = self.q("SELECT * FROM items WHERE drive_id=? AND deleted=0 AND substr(path,1,?)=? ORDER BY path",
                      (item.drive_id, len(prefix), prefix))
        return [i for i in map(self._item, rows) if i is not None]

    def delete_item(self, item: Item, *, by: str, if_match: str | None = None) -> None:
        """Delete an item and everything below it; each gets a tombstone for delta."""
        if item.is_root:
            raise StateError(403, "accessDenied", "The root of a drive cannot be deleted.")
        self.check_if_match(item, if_match)
        now = iso()
        with self.transaction():
            # Deepest first, so delta shows children's tombstones before their folder's.
            for victim in [*reversed(self.descendants(item)), item]:
                self.x("UPDATE items SET deleted=1, modified_at=?, modified_by=?, seq=? WHERE id=?",
                       (now, by, self.next_seq(), victim.id))
                self.x("DELETE FROM scopes WHERE scope_key=?", (victim.scope_key,))
                self.x("DELETE FROM role_assignments WHERE scope_key=?", (victim.scope_key,))
                for link in self.q("SELECT * FROM sharing_links WHERE item_id=?", (victim.id,)):
                    self.delete_sharing_link(link["id"])

    def set_fields(self, item: Item, fields: dict[str, Any], *, by: str) -> Item:
        """Update list-item columns of a library item (metadata only: no new file version)."""
        merged = item.fields | fields
        with self.transaction():
            self.x("UPDATE items SET fields=?, etag_no=etag_no+1, modified_at=?, modified_by=?, seq=? WHERE id=?",
                   (json.dumps(merged), iso(), by, self.next_seq(), item.id))
        updated = self.item(item.drive_id, item.id)
        assert updated is not None
        return updated

    def delta_items(self, drive_id: str, *, after_seq: int, limit: int) -> list[Item]:
        """Items (tombstones too) changed after ``after_seq``, oldest change first."""
        rows = self.q("SELECT * FROM items WHERE drive_id=? AND seq>? ORDER BY seq LIMIT ?",
                      (drive_id, after_seq, limit))
        return [i for i in map(self._item, rows) if i is not None]

    # A full enumeration lists the drive as it stood when it began, parents before children. The
    # order is fixed then, in a table: ordering pages by the items' *current* depth would let a
    # folder moved shallower between two pages carry its unchanged files to a depth the listing
    # has already passed, and they would never be listed (Graph's feed loses nothing). Items
    # changed after the start are left out here and come in the changes that follow.
    #: open enumerations kept per drive; an older one's nextLink gets 410 and a fresh Location
    SNAPSHOTS_KEPT = 16
    #: seconds an unfinished enumeration stays resumable
    SNAPSHOT_MAX_AGE = 24 * 3600

    def open_snapshot(self, drive_id: str, upto_seq: int) -> str:
        """Fix the order of a full enumeration of the live items at or below ``upto_seq``."""
        snapshot_id, now = secrets.token_hex(8), datetime.now(UTC).timestamp()
        depth = "(length(path) - length(replace(path, '/', '')))"
        with self.transaction():
            stale = [r["id"] for r in self.q(
                "SELECT id FROM delta_snapshots WHERE drive_id=? ORDER BY created_at DESC LIMIT -1 OFFSET ?",
                (drive_id, self.SNAPSHOTS_KEPT - 1))]
            stale += [r["id"] for r in self.q("SELECT id FROM delta_snapshots WHERE created_at < ?",
                                              (now - self.SNAPSHOT_MAX_AGE,))]
            for old in set(stale):
                self.close_snapshot(old)
            self.x("INSERT INTO delta_snapshot_items(snapshot_id, ord, item_id) "  # noqa: S608 - constant SQL
                   f"SELECT ?, row_number() OVER (ORDER BY {depth}, id), id FROM items "
                   "WHERE drive_id=? AND deleted=0 AND seq<=?", (snapshot_id, drive_id, upto_seq))
            size_row = self.q1("SELECT COUNT(*) AS n FROM delta_snapshot_items WHERE snapshot_id=?", (snapshot_id,))
            self.x("INSERT INTO delta_snapshots VALUES(?,?,?,?,?)",
                   (snapshot_id, drive_id, upto_seq, int(size_row["n"]) if size_row else 0, now))
        return snapshot_id

    def snapshot_size(self, snapshot_id: str) -> int | None:
        """How many items the enumeration fixed, or None when it is no longer kept."""
        row = self.q1("SELECT size FROM delta_snapshots WHERE id=?", (snapshot_id,))
        return None if row is None else int(row["size"])

    def snapshot_items(self, snapshot_id: str, *, upto_seq: int, after: int, limit: int) -> list[Item]:
        """Positions ``after+1 … after+limit`` of an enumeration, as the items are now; an item
        deleted or changed since the enumeration began is skipped (it follows as a change)."""
        rows = self.q("SELECT i.* FROM delta_snapshot_items s JOIN items i ON i.id = s.item_id "
                      "WHERE s.snapshot_id=? AND s.ord>? AND s.ord<=? AND i.deleted=0 AND i.seq<=? ORDER BY s.ord",
                      (snapshot_id, after, after + limit, upto_seq))
        return [i for i in map(self._item, rows) if i is not None]

    def close_snapshot(self, snapshot_id: str) -> None:
        with self.transaction():
            self.x("DELETE FROM delta_snapshot_items WHERE snapshot_id=?", (snapshot_id,))
            self.x("DELETE FROM delta_snapshots WHERE id=?", (snapshot_id,))

    # Added for graph_drive: upload sessions, check-out state, quota.
    def create_upload_session(self, *, drive_id: str, parent_id: str, name: str, conflict: str,
                              total: int | None, expires: str, defer_commit: bool, client_id: str,
                              description: str | None) -> UploadSession:
        """Open a resumable upload; its id is the unguessable secret of the pre-authorized uploadUrl."""
        session_id = secrets.token_urlsafe(32)
        self.x("INSERT INTO upload_sessions(id,drive_id,parent_id,name,conflict,total,received,expires,"
               "defer_commit,client_id,description) VALUES(?,?,?,?,?,?,x'',?,?,?,?)",
               (session_id, drive_id, parent_id, name, conflict, total, expires, int(defer_commit), client_id,
                description))
        found = self.upload_session(session_id)
        assert found is not None
        return found

    def upload_session(self, session_id: str) -> UploadSession | None:
        row = self.q1("SELECT id,drive_id,parent_id,name,conflict,total,length(received) AS received,expires,"
                      "defer_commit,client_id,description FROM upload_sessions WHERE id=?", (session_id,))
        if row is None:
            return None
        data = {k: row[k] for k in row.keys()}  # noqa: SIM118
        data["defer_commit"] = bool(data["defer_commit"])
        return UploadSession(**data)

    def append_upload(self, session_id: str, fragment: bytes, *, total: int, expires: str) -> None:
        """Append the next in-order fragment and fix the declared total size."""
        # Concatenated here, not with SQL ``||``, which turns BLOBs into TEXT.
        self.x("UPDATE upload_sessions SET received=?, total=?, expires=? WHERE id=?",
               (self.upload_bytes(session_id) + fragment, total, expires, session_id))

    def upload_bytes(self, session_id: str) -> bytes:
        row = self.q1("SELECT received FROM upload_sessions WHERE id=?", (session_id,))
        return bytes(row["received"]) if row else b""

    def delete_upload_session(self, session_id: str) -> bool:
        return self.x("DELETE FROM upload_sessions WHERE id=?", (session_id,)).rowcount > 0

    def checkout_holder(self, item: Item) -> str | None:
        """Who has the file checked out (display name), or None."""
        return self.meta(f"checkout:{item.id}") or None

    def set_checkout(self, item: Item, holder: str | None) -> None:
        """Check a file out to ``holder`` or, with None, check it back in."""
        self.set_meta(f"checkout:{item.id}", holder or "")

    def drive_used_bytes(self, drive_id: str) -> int:
        """Bytes used by the current versions of the drive's live files (drive quota ``used``)."""
        row = self.q1("SELECT COALESCE(SUM(size),0) AS s FROM items WHERE drive_id=? AND deleted=0 "
                      "AND is_folder=0", (drive_id,))
        return int(row["s"]) if row else 0

    def bulk_insert_items(self, parent: Item, entries: Sequence[tuple[int, str, bytes | None]], *, by: str,
                          mime: str | None = None) -> list[str]:
        """Create many folders and files below ``parent`` in one transaction (seeding, benchmarks).

        ``entries`` are ``(parent_index, name, content)``: ``parent_index`` -1 means ``parent``,
        otherwise the index of an earlier entry, which must be a folder; ``content`` None makes a
        folder. Each item gets its own change stamp, list item id and (files) first version, as
        ``create_folder``/``put_file`` would give it, but nothing is resolved per item: a name
        taken in its folder is 409. Returns the new ids in entry order.
        """
        if not parent.is_folder:
            raise StateError(400, "invalidRequest", "The parent must be a folder.")
        drive = self.drive(parent.drive_id)
        assert drive is not None
        row = self.q1("SELECT url_name FROM lists WHERE id=?", (drive.list_id,))
        assert row is not None
        url_name = str(row["url_name"])
        taken: dict[int, set[str]] = {-1: {r["name"].lower() for r in self.q(
            "SELECT name FROM items WHERE parent_id=? AND deleted=0", (parent.id,))}}
        paths: list[str] = []
        for index, (parent_index, name, content) in enumerate(entries):
            check_name(name)
            if parent_index != -1 and not (0 <= parent_index < index and entries[parent_index][2] is None):
                raise StateError(400, "invalidRequest", f"Entry {index}: its parent must be an earlier folder.")
            siblings = taken.setdefault(parent_index, set())
            if name.lower() in siblings:
                raise NameConflict(f"An item with the name '{name}' already exists in the folder.")
            siblings.add(name.lower())
            path = f"{parent.path if parent_index == -1 else paths[parent_index]}/{name}"
            if len(url_name) + len(path) > MAX_PATH_LENGTH:
                raise StateError(400, "invalidRequest", f"The path '{path[:60]}…' is longer than SharePoint "
                                                        f"allows ({MAX_PATH_LENGTH} characters).")
            paths.append(path)
            del content
        n = len(entries)
        if n == 0:
            return []
        now = iso()
        # os.urandom-based ids: new_item_id() draws 32 characters one by one, too slow for 100k items.
        ids = ["01" + base64.b32encode(os.urandom(20)).decode() for _ in range(n)]
        with self.transaction():
            first_seq = self.current_seq() + 1
            self.set_meta("seq", str(first_seq + n - 1))
            self.db.executemany("INSERT INTO change_times(seq, at) VALUES(?,?)",
                                ((first_seq + i, now) for i in range(n)))
            list_row = self.q1("SELECT next_item_id FROM lists WHERE id=?", (drive.list_id,))
            assert list_row is not None
            first_list_item = int(list_row["next_item_id"])
            self.x("UPDATE lists SET next_item_id=? WHERE id=?", (first_list_item + n, drive.list_id))
            item_rows, version_rows = [], []
            for i, (parent_index, name, content) in enumerate(entries):
                is_folder = content is None
                data = content or b""
                digest = None if is_folder else hashlib.sha256(data).hexdigest()
                item_rows.append((ids[i], parent.drive_id, parent.id if parent_index == -1 else ids[parent_index],
                                  name, int(is_folder), paths[i], str(uuid.uuid4()), first_list_item + i,
                                  len(data), digest, None if is_folder else mime, 0 if is_folder else 1,
                                  now, by, now, by, first_seq + i, None if is_folder else quick_xor_hash(data)))
                if not is_folder:
                    version_rows.append((ids[i], 1, data, len(data), digest, now, by))
            self.db.executemany(
                "INSERT INTO items(id,drive_id,parent_id,name,is_folder,path,uid,list_item_id,size,sha256,mime,"
                "major,created_at,created_by,modified_at,modified_by,seq,quick_xor) "
                "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                item_rows)
            self.db.executemany("INSERT INTO versions VALUES(?,?,?,?,?,?,?)", version_rows)
        return ids

    def library_item_count(self, drive_id: str) -> int:
        """SP.List.ItemCount of a library: its live files and folders (the root folder is no item)."""
        row = self.q1("SELECT COUNT(*) AS n FROM items WHERE drive_id=? AND deleted=0 "
                      "AND parent_id IS NOT NULL", (drive_id,))
        return int(row["n"]) if row else 0

    # ------------------------------------------------------------------ generic list items
    def add_list_item(self, lst: ListRecord, fields: dict[str, Any], *, by: str) -> dict[str, Any]:
        if lst.drive_id:
            raise StateError(400, "invalidRequest", "Items of a document library are files and folders.")
        now = iso()
        with self.transaction():
            item_id = self._next_list_item_id(lst.id)
            self.x("INSERT INTO list_items VALUES(?,?,?,?,?,?,?,?,1)",
                   (lst.id, item_id, new_guid(), json.dumps(fields), now, by, now, by))
        found = self.list_item(lst, item_id)
        assert found is not None
        return found

    def list_item(self, lst: ListRecord, item_id: int) -> dict[str, Any] | None:
        row = self.q1("SELECT * FROM list_items WHERE list_id=? AND id=?", (lst.id, item_id))
        if row is None:
            return None
        return dict(row) | {"fields": json.loads(row["fields"])}

    def list_items(self, lst: ListRecord, *, after_id: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        rows = self.q("SELECT * FROM list_items WHERE list_id=? AND id>? ORDER BY id LIMIT ?",
                      (lst.id, after_id, limit))
        return [dict(r) | {"fields": json.loads(r["fields"])} for r in rows]

    def update_list_item(self, lst: ListRecord, item_id: int, fields: dict[str, Any], *, by: str) -> dict[str, Any]:
        current = self.list_item(lst, item_id)
        if current is None:
            raise NotFound(f"Item {item_id} does not exist in list '{lst.title}'.")
        merged = current["fields"] | fields
        self.x("UPDATE list_items SET fields=?, modified_at=?, modified_by=?, version=version+1 "
               "WHERE list_id=? AND id=?", (json.dumps(merged), iso(), by, lst.id, item_id))
        updated = self.list_item(lst, item_id)
        assert updated is not None
        return updated

    def delete_list_item(self, lst: ListRecord, item_id: int) -> bool:
        return self.x("DELETE FROM list_items WHERE list_id=? AND id=?", (lst.id, item_id)).rowcount > 0

    def library_items(self, drive_id: str, *, after_id: int = 0, limit: int = 200) -> list[Item]:
        """A library's list items (its live files and folders, not the root) in list item id order."""
        rows = self.q("SELECT * FROM items WHERE drive_id=? AND deleted=0 AND parent_id IS NOT NULL AND "
                      "list_item_id>? ORDER BY list_item_id LIMIT ?", (drive_id, after_id, limit))
        return [i for i in map(self._item, rows) if i is not None]

    def add_list_field(self, lst: ListRecord, field: dict[str, Any]) -> None:
        fields = [f for f in lst.fields if f.get("InternalName") != field.get("InternalName")]
        fields.append(field)
        self.x("UPDATE lists SET fields=? WHERE id=?", (json.dumps(fields), lst.id))

    # ------------------------------------------------------------------ principals
    def add_principal(self, site_id: str, kind: str, login_name: str, title: str, *, email: str = "",
                      upn: str | None = None, directory_id: str | None = None, owner_id: int | None = None,
                      description: str = "", hidden: bool = False, is_site_admin: bool = False,
                      id: int | None = None) -> Principal:
        if id is None:
            id = int(self.meta(f"next_principal:{site_id}") or "6")
            self.set_meta(f"next_principal:{site_id}", str(id + 1))
        self.x("INSERT INTO principals VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
               (id, site_id, kind, login_name, title, email, upn, directory_id, owner_id, description,
                int(hidden), int(is_site_admin)))
        found = self.principal(site_id, id)
        assert found is not None
        return found

    def _principal(self, row: sqlite3.Row | None) -> Principal | None:
        if row is None:
            return None
        data = {k: row[k] for k in row.keys()}  # noqa: SIM118
        data["hidden"], data["is_site_admin"] = bool(data["hidden"]), bool(data["is_site_admin"])
        return Principal(**data)

    def principal(self, site_id: str, principal_id: int) -> Principal | None:
        return self._principal(self.q1("SELECT * FROM principals WHERE site_id=? AND id=?", (site_id, principal_id)))

    def principal_by_login(self, site_id: str, login_name: str) -> Principal | None:
        return self._principal(self.q1("SELECT * FROM principals WHERE site_id=? AND login_name=?",
                                       (site_id, login_name)))

    def site_group_by_name(self, site_id: str, name: str) -> Principal | None:
        return self._principal(self.q1("SELECT * FROM principals WHERE site_id=? AND kind='group' AND title=? "
                                       "COLLATE NOCASE", (site_id, name)))

    def principals(self, site_id: str, kinds: Sequence[str]) -> list[Principal]:
        marks = ",".join("?" for _ in kinds)
        rows = self.q(f"SELECT * FROM principals WHERE site_id=? AND kind IN ({marks}) ORDER BY id",  # noqa: S608
                      (site_id, *kinds))
        return [p for p in map(self._principal, rows) if p is not None]

    def ensure_user(self, site_id: str, logon: str) -> Principal:
        """SharePoint's EnsureUser: resolve a claim, UPN or mail to a site principal, adding it once.

        Accepted: ``i:0#.f|membership|upn`` (users and guests), a bare UPN or mail,
        ``c:0t.c|tenant|{groupObjectId}`` (Entra security groups),
        ``c:0o.c|federateddirectoryclaimprovider|{groupId}`` (Microsoft 365 groups), and the
        "Everyone except external users" claim. Anything else is 404 like SharePoint's
        "The specified user … could not be found."
        """
        tenant_id = self.meta("tenant_id") or ""
        claim = logon.strip()
        existing = self.principal_by_login(site_id, claim)
        if existing is not None:
            return existing
        lowered = claim.lower()
        if lowered.startswith(("c:0t.c|tenant|", "c:0o.c|federateddirectoryclaimprovider|")):
            group = self.group(claim.rsplit("|", 1)[1])
            if group is None:
                raise StateError(404, "itemNotFound", f"The specified user {claim} could not be found.")
            return self.add_principal(site_id, "secgroup", claim, group["display_name"],
                                      email=group["mail_nickname"] + "@" + (self.meta("tenant_domain") or ""),
                                      directory_id=group["id"])
        if lowered.startswith("c:0-.f|rolemanager|spo-grid-all-users/"):
            return self.add_principal(site_id, "secgroup", f"c:0-.f|rolemanager|spo-grid-all-users/{tenant_id}",
                                      "Everyone except external users")
        key = claim.rsplit("|", 1)[1] if claim.lower().startswith("i:0#.f|membership|") else claim
        user = self.user(key)
        if user is None:
            raise StateError(404, "itemNotFound", f"The specified user {claim} could not be found.")
        login = f"i:0#.f|membership|{user['upn'].lower()}"
        existing = self.principal_by_login(site_id, login)
        if existing is not None:
            return existing
        return self.add_principal(site_id, "user", login, user["display_name"], email=user["mail"] or "",
                                  upn=user["upn"], directory_id=user["id"])

    def ensure_app_principal(self, site_id: str, app: App) -> Principal:
        """The site principal an app-only caller acts as (``i:0i.t|ms.sp.ext|{app}@{tenant}``)."""
        login = f"i:0i.t|ms.sp.ext|{app.client_id}@{self.meta('tenant_id')}"
        return self.principal_by_login(site_id, login) or self.add_principal(site_id, "app", login, app.display_name)

    def create_site_group(self, site_id: str, title: str, *, description: str = "",
                          owner_id: int | None = None) -> Principal:
        if self.site_group_by_name(site_id, title) or self.principal_by_login(site_id, title):
            raise StateError(409, "nameAlreadyExists",
                             f"The specified name is already in use. A group, user or other object named "
                             f"'{title}' already exists.")
        group = self.add_principal(site_id, "group", title, title, description=description, owner_id=owner_id)
        if owner_id is None:
            self.x("UPDATE principals SET owner_id=? WHERE site_id=? AND id=?", (group.id, site_id, group.id))
        found = self.principal(site_id, group.id)
        assert found is not None
        return found

    def update_site_group(self, site_id: str, group_id: int, *, title: str | None = None,
                          description: str | None = None) -> None:
        if title is not None:
            self.x("UPDATE principals SET title=?, login_name=? WHERE site_id=? AND id=?", (title, title, site_id,
                                                                                           group_id))
        if description is not None:
            self.x("UPDATE principals SET description=? WHERE site_id=? AND id=?", (description, site_id, group_id))

    def delete_site_group(self, site_id: str, group_id: int) -> None:
        with self.transaction():
            self.x("DELETE FROM principals WHERE site_id=? AND id=? AND kind='group'", (site_id, group_id))
            self.x("DELETE FROM site_group_members WHERE site_id=? AND group_id=?", (site_id, group_id))
            self.x("DELETE FROM role_assignments WHERE principal_id=? AND scope_key IN "
                   "(SELECT scope_key FROM scopes WHERE site_id=?)", (group_id, site_id))

    def site_group_members(self, site_id: str, group_id: int) -> list[Principal]:
        rows = self.q("SELECT p.* FROM site_group_members m JOIN principals p ON p.site_id=m.site_id AND "
                      "p.id=m.principal_id WHERE m.site_id=? AND m.group_id=? ORDER BY p.id", (site_id, group_id))
        return [p for p in map(self._principal, rows) if p is not None]

    def add_site_group_member(self, site_id: str, group_id: int, principal_id: int) -> None:
        self.x("INSERT OR IGNORE INTO site_group_members VALUES(?,?,?)", (site_id, group_id, principal_id))

    def remove_site_group_member(self, site_id: str, group_id: int, principal_id: int) -> bool:
        return self.x("DELETE FROM site_group_members WHERE site_id=? AND group_id=? AND principal_id=?",
                      (site_id, group_id, principal_id)).rowcount > 0

    def groups_of(self, site_id: str, principal_id: int) -> list[int]:
        return [r["group_id"] for r in self.q("SELECT group_id FROM site_group_members WHERE site_id=? AND "
                                              "principal_id=?", (site_id, principal_id))]

    def remove_site_user(self, site_id: str, principal_id: int) -> None:
        """SharePoint's siteusers/RemoveById: the user leaves the site, its groups and role assignments."""
        with self.transaction():
            key = (site_id, principal_id)
            self.x("DELETE FROM principals WHERE site_id=? AND id=? AND kind!='group'", key)
            self.x("DELETE FROM site_group_members WHERE site_id=? AND principal_id=?", key)
            self.x("DELETE FROM role_assignments WHERE principal_id=? AND scope_key IN "
                   "(SELECT scope_key FROM scopes WHERE site_id=?)", (principal_id, site_id))

    # ------------------------------------------------------------------ role definitions
    def role_definitions(self, site_id: str) -> list[RoleDefinition]:
        rows = self.q("SELECT id,name,role_type_kind,description,ord AS 'order',perm_low,perm_high,hidden "
                      "FROM role_definitions WHERE site_id=? ORDER BY ord", (site_id,))
        return [RoleDefinition(**{k: r[k] for k in r.keys()} | {"hidden": bool(r["hidden"])})  # noqa: SIM118
                for r in rows]

    def role_definition(self, site_id: str, *, id: int | None = None, name: str | None = None,
                        role_type_kind: int | None = None) -> RoleDefinition | None:
        for rd in self.role_definitions(site_id):
            if (id is not None and rd.id == id) or (name is not None and rd.name.lower() == name.lower()) or (
                    role_type_kind is not None and rd.role_type_kind == role_type_kind and role_type_kind != 0):
                return rd
        return None

    # ------------------------------------------------------------------ securables and role assignments
    def scope_parent(self, scope_key: str) -> str | None:
        """The securable an object inherits from: item → parent folder → … → library → web."""
        kind, _, key = scope_key.partition(":")
        if kind == "web":
            return None
        if kind == "list":
            row = self.q1("SELECT site_id FROM lists WHERE id=?", (key,))
            return f"web:{row['site_id']}" if row else None
        row = self.q1("SELECT i.parent_id, d.list_id FROM items i JOIN drives d ON d.id=i.drive_id WHERE i.id=?",
                      (key,))
        if row is None:
            return None
        if row["parent_id"] is None:
            return f"list:{row['list_id']}"
        parent = self.q1("SELECT parent_id FROM items WHERE id=?", (row["parent_id"],))
        # The library's root folder shares the library's permissions (it has no list item).
        if parent is not None and parent["parent_id"] is None:
            return f"list:{row['list_id']}"
        return f"item:{row['parent_id']}"

    def site_of_scope(self, scope_key: str) -> str:
        kind, _, key = scope_key.partition(":")
        if kind == "web":
            return key
        if kind == "list":
            row = self.q1("SELECT site_id FROM lists WHERE id=?", (key,))
        else:
            row = self.q1("SELECT d.site_id FROM items i JOIN drives d ON d.id=i.drive_id WHERE i.id=?", (key,))
        if row is None:
            raise NotFound()
        return str(row["site_id"])

    def has_unique(self, scope_key: str) -> bool:
        return self.q1("SELECT 1 FROM scopes WHERE scope_key=?", (scope_key,)) is not None

    def effective_scope(self, scope_key: str) -> str:
        """The nearest securable (itself or an ancestor) that holds unique role assignments."""
        current: str | None = scope_key
        while current is not None:
            if self.has_unique(current):
                return current
            current = self.scope_parent(current)
        raise NotFound("No securable with role assignments was found.")

    def role_assignments(self, scope_key: str) -> dict[int, list[int]]:
        """principal id → role definition ids, as seen on the object (inherited when not unique)."""
        effective = self.effective_scope(scope_key)
        result: dict[int, list[int]] = {}
        for row in self.q("SELECT principal_id, roledef_id FROM role_assignments WHERE scope_key=? "
                          "ORDER BY principal_id, roledef_id", (effective,)):
            result.setdefault(int(row["principal_id"]), []).append(int(row["roledef_id"]))
        return result

    def break_inheritance(self, scope_key: str, *, copy_role_assignments: bool, clear_subscopes: bool,
                          current_principal_id: int | None) -> bool:
        """BreakRoleInheritance per MS-CSOMSPT; returns False when the object was already unique.

        Already unique: nothing changes. ``copyRoleAssignments=false`` leaves exactly one
        assignment, Full Control for the calling principal. ``clearSubscopes=true`` resets every
        descendant with unique permissions to inherit.
        """
        if self.has_unique(scope_key):
            return False
        site_id = self.site_of_scope(scope_key)
        self._note_security_change(scope_key)
        with self.transaction():
            inherited = self.role_assignments(scope_key)
            self.x("INSERT INTO scopes VALUES(?,?)", (scope_key, site_id))
            if copy_role_assignments:
                for principal_id, roles in inherited.items():
                    for role in roles:
                        self.add_role_assignment(scope_key, principal_id, role)
            elif current_principal_id is not None:
                self.add_role_assignment(scope_key, current_principal_id, FULL_CONTROL)
            if clear_subscopes:
                self._clear_subscopes(scope_key)
        return True

    def _clear_subscopes(self, scope_key: str) -> None:
        kind, _, key = scope_key.partition(":")
        if kind == "web":
            keys = [r["scope_key"] for r in self.q("SELECT scope_key FROM scopes WHERE site_id=? AND scope_key!=?",
                                                   (key, scope_key))]
        elif kind == "list":
            drive = self.q1("SELECT id FROM drives WHERE list_id=?", (key,))
            keys = []
            if drive is not None:
                keys = [f"item:{r['id']}" for r in self.q("SELECT id FROM items WHERE drive_id=? AND deleted=0",
                                                            (drive["id"],))]
        else:
            item = self.item_any_drive(key)
            keys = [d.scope_key for d in self.descendants(item)] if item else []
        for k in keys:
            if k != scope_key:
                self.x("DELETE FROM scopes WHERE scope_key=?", (k,))
                self.x("DELETE FROM role_assignments WHERE scope_key=?", (k,))
                for link in self.q("SELECT id FROM sharing_links WHERE 'item:' || item_id = ?", (k,)):
                    self.delete_sharing_link(link["id"])

    def reset_inheritance(self, scope_key: str) -> None:
        if scope_key.startswith("web:"):
            raise StateError(400, "invalidRequest", "A root web cannot inherit permissions.")
        if self.has_unique(scope_key):
            self._note_security_change(scope_key)
        with self.transaction():
            self.x("DELETE FROM scopes WHERE scope_key=?", (scope_key,))
            self.x("DELETE FROM role_assignments WHERE scope_key=?", (scope_key,))
            if scope_key.startswith("item:"):
                for link in self.q("SELECT id FROM sharing_links WHERE item_id=?", (scope_key[5:],)):
                    self.delete_sharing_link(link["id"])

    def _note_security_change(self, scope_key: str) -> None:
        """Remember the drive(s) under ``scope_key`` for ``includesecuritywebhooks`` subscribers."""
        kind, _, key = scope_key.partition(":")
        if kind == "item":
            rows = self.q("SELECT drive_id AS id FROM items WHERE id=?", (key,))
        elif kind == "list":
            rows = self.q("SELECT id FROM drives WHERE list_id=?", (key,))
        else:
            rows = self.q("SELECT id FROM drives WHERE site_id=?", (key,))
        self._security_changed.update(str(r["id"]) for r in rows)

    def take_security_changes(self) -> set[str]:
        """Drives whose permissions changed since the last call (role assignments, inheritance,
        sharing links); cleared."""
        changed, self._security_changed = self._security_changed, set()
        return changed

    def _require_unique(self, scope_key: str) -> None:
        if not self.has_unique(scope_key):
            raise StateError(400, "invalidRequest",
                             "This operation is not allowed on an object that inherits permissions.")

    def add_role_assignment(self, scope_key: str, principal_id: int, roledef_id: int) -> None:
        self._require_unique(scope_key)
        if self.x("INSERT OR IGNORE INTO role_assignments VALUES(?,?,?)",
                  (scope_key, principal_id, roledef_id)).rowcount:
            self._note_security_change(scope_key)

    def remove_role_assignment(self, scope_key: str, principal_id: int, roledef_id: int | None) -> int:
        """Remove one binding, or all of a principal's bindings when ``roledef_id`` is None."""
        self._require_unique(scope_key)
        if roledef_id is None:
            removed = self.x("DELETE FROM role_assignments WHERE scope_key=? AND principal_id=?",
                             (scope_key, principal_id)).rowcount
        else:
            removed = self.x("DELETE FROM role_assignments WHERE scope_key=? AND principal_id=? AND roledef_id=?",
                             (scope_key, principal_id, roledef_id)).rowcount
        if removed:
            self._note_security_change(scope_key)
        return int(removed)

    def unique_scope_count(self, site_id: str) -> int:
        row = self.q1("SELECT COUNT(*) AS n FROM scopes WHERE site_id=?", (site_id,))
        return int(row["n"]) if row else 0

    # ------------------------------------------------------------------ sharing links
    def sharing_links(self, item_id: str) -> list[SharingLink]:
        rows = self.q("SELECT * FROM sharing_links WHERE item_id=? ORDER BY created_at", (item_id,))
        return [SharingLink(**{k: r[k] for k in r.keys()} | {"has_password": bool(r["has_password"])})  # noqa: SIM118
                for r in rows]

    def create_sharing_link(self, item: Item, site_id: str, *, link_type: str, scope: str, by: str,
                            expiration: str | None = None, has_password: bool = False) -> tuple[SharingLink, bool]:
        """A sharing link is a hidden ``SharingLinks.*`` site group holding a role on the item.

        Returns the link and whether it was created (one link per type and scope per item, as
        Graph's createLink is idempotent). Sharing an inheriting item breaks its inheritance,
        keeping the inherited assignments, exactly as the SharePoint UI's "Share" does.
        """
        for link in self.sharing_links(item.id):
            if link.type == link_type and link.scope == scope:
                return link, False
        share_id = new_guid()
        kind = {("view", "anonymous"): "AnonymousView", ("edit", "anonymous"): "AnonymousEdit",
                ("view", "organization"): "OrganizationView", ("edit", "organization"): "OrganizationEdit"}.get(
            (link_type, scope), "Flexible")
        with self.transaction():
            group = self.add_principal(site_id, "group", f"SharingLinks.{item.uid}.{kind}.{share_id}",
                                       f"SharingLinks.{item.uid}.{kind}.{share_id}", hidden=True,
                                       description="Sharing link group")
            self.break_inheritance(item.scope_key, copy_role_assignments=True, clear_subscopes=False,
                                   current_principal_id=None)
            self.add_role_assignment(item.scope_key, group.id, CONTRIBUTE if link_type == "edit" else READ)
            self.x("INSERT INTO sharing_links VALUES(?,?,?,?,?,?,?,?,?)",
                   (share_id, item.id, link_type, scope, group.id, iso(), by, expiration, int(has_password)))
        created = next(link for link in self.sharing_links(item.id) if link.id == share_id)
        return created, True

    def delete_sharing_link(self, share_id: str) -> None:
        row = self.q1("SELECT * FROM sharing_links WHERE id=?", (share_id,))
        if row is None:
            return
        site = self.q1("SELECT d.site_id FROM items i JOIN drives d ON d.id=i.drive_id WHERE i.id=?",
                       (row["item_id"],))
        self.x("DELETE FROM sharing_links WHERE id=?", (share_id,))
        self._note_security_change(f"item:{row['item_id']}")
        if site is not None:
            self.delete_site_group(site["site_id"], row["group_principal_id"])

    def link_for_group(self, site_id: str, principal_id: int) -> SharingLink | None:
        del site_id
        row = self.q1("SELECT * FROM sharing_links WHERE group_principal_id=?", (principal_id,))
        if row is None:
            return None
        return SharingLink(**{k: row[k] for k in row.keys()} | {"has_password": bool(row["has_password"])})  # noqa: SIM118

    # ------------------------------------------------------------------ subscriptions
    def add_subscription(self, sub: Subscription) -> None:
        self.x("INSERT INTO subscriptions VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)", dataclasses.astuple(sub))

    def subscription(self, sub_id: str) -> Subscription | None:
        row = self.q1("SELECT * FROM subscriptions WHERE id=?", (sub_id,))
        return None if row is None else _subscription(row)

    def subscriptions(self, client_id: str | None = None) -> list[Subscription]:
        if client_id is None:
            rows = self.q("SELECT * FROM subscriptions ORDER BY created_at")
        else:
            rows = self.q("SELECT * FROM subscriptions WHERE client_id=? ORDER BY created_at", (client_id,))
        return [_subscription(r) for r in rows]

    def renew_subscription(self, sub_id: str, expiration: str) -> None:
        """A new expiration; like Graph's PATCH it also answers a pending reauthorization."""
        self.x("UPDATE subscriptions SET expiration=?, challenged_at=NULL WHERE id=?", (expiration, sub_id))

    def challenge_subscription(self, sub_id: str, *, cleared: bool = False) -> None:
        """Require (or, ``cleared``, answer) a reauthorization of the subscription."""
        self.x("UPDATE subscriptions SET challenged_at=? WHERE id=?", (None if cleared else iso(), sub_id))

    def delete_subscription(self, sub_id: str) -> bool:
        return self.x("DELETE FROM subscriptions WHERE id=?", (sub_id,)).rowcount > 0

    # ------------------------------------------------------------------ teams
    def add_channel(self, name: str, display_name: str, webhook_id: str | None = None) -> str:
        hook = webhook_id or secrets.token_hex(16)
        self.x("INSERT OR REPLACE INTO teams_channels VALUES(?,?,?)", (name, hook, display_name))
        return hook

    def channels(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.q("SELECT * FROM teams_channels ORDER BY name")]

    def channel_by_webhook(self, webhook_id: str) -> dict[str, Any] | None:
        row = self.q1("SELECT * FROM teams_channels WHERE webhook_id=?", (webhook_id,))
        return dict(row) if row else None

    def add_teams_message(self, channel: str, body: str, status: str, reason: str | None) -> int:
        cur = self.x("INSERT INTO teams_messages(channel,received_at,size,body,status,reason) VALUES(?,?,?,?,?,?)",
                     (channel, iso(), len(body.encode()), body, status, reason))
        return int(cur.lastrowid or 0)

    def teams_messages(self, channel: str | None = None) -> list[dict[str, Any]]:
        if channel is None:
            rows = self.q("SELECT * FROM teams_messages ORDER BY id")
        else:
            rows = self.q("SELECT * FROM teams_messages WHERE channel=? ORDER BY id", (channel,))
        return [dict(r) for r in rows]

    def teams_message_counts(self) -> dict[str, dict[str, int]]:
        """Per channel, how many messages were recorded with each status (``posted``, ``failed``)."""
        counts: dict[str, dict[str, int]] = {}
        for r in self.q("SELECT channel, status, COUNT(*) AS n FROM teams_messages GROUP BY channel, status"):
            counts.setdefault(r["channel"], {})[r["status"]] = int(r["n"])
        return counts
