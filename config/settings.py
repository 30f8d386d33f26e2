"""cartif-bot's settings: one typed object, grouped by concern, loaded once by ``Settings.load()``.

Where it sits: the CLI loads the settings once and hands the object to whatever it builds
(connectors, the register, the scheduler). Nothing else in the bot reads ``os.environ``.

Sources, highest priority first::

    keyword arguments → CARTIF_* environment → .env file → secrets directory → tenant file → defaults

* Variables carry the prefix ``CARTIF_``; ``__`` separates a group from its field:
  ``CARTIF_AUTH__CLIENT_ID``. Names are case-insensitive.
* The secrets directory (Docker/Kubernetes secrets) holds one file per setting, named like the
  variable (``cartif_auth__client_secret``). ``CARTIF_SECRETS_DIR``; default ``/run/secrets``
  when that directory exists.
* ``CARTIF_TENANT_FILE=path/to/tenant.json`` fills tenant, auth, endpoint and Teams settings
  from a local tenant's connection file (written by ``cartif-bot emulator serve``); anything
  set explicitly still wins over it.
* Defaults point at Microsoft's public cloud (login.microsoftonline.com, graph.microsoft.com).

Every field documents what it expects (the first sentence of its description), its unit,
default and why. A missing or invalid value raises ``SettingsError`` with one line naming the
variable, e.g. ``CARTIF_AUTH__CLIENT_ID: required — the app registration's Application
(client) ID (a GUID)``. Secrets are ``SecretStr`` and never appear in messages or output.
"""

from __future__ import annotations

import contextvars
import json
import os
import re
import uuid
import zoneinfo
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, NamedTuple
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings import SettingsError as PydanticSettingsError
from pydantic_settings.sources import NestedSecretsSettingsSource

from config.structure import DEFAULT_STRUCTURE

__all__ = [
    "ENV_PREFIX",
    "AuthSettings",
    "EndpointSettings",
    "HttpSettings",
    "NotificationSettings",
    "PermissionsSettings",
    "ScheduleSettings",
    "ServiceSettings",
    "SettingEntry",
    "Settings",
    "SettingsError",
    "StoreSettings",
    "SyncSettings",
    "TeamsSettings",
    "TenantSettings",
    "mask_url_password",
]

ENV_PREFIX = "CARTIF_"
MASK = "**********"
#: Docker and Kubernetes mount secrets here; used only when it exists, so a laptop without it works.
DEFAULT_SECRETS_DIR = Path("/run/secrets")
PUBLIC_AUTHORITY_HOST = "https://login.microsoftonline.com"
PUBLIC_GRAPH_URL = "https://graph.microsoft.com/v1.0"
PUBLIC_GRAPH_SCOPE = "https://graph.microsoft.com/.default"


class SettingsError(Exception):
    """The settings are missing or invalid; ``str()`` is one line naming the variable to fix."""

    def __init__(self, message: str, *, variables: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        #: every variable with a problem, first one first (the message names the first)
        self.variables = variables


# ---------------------------------------------------------------------------------------------- value types
def _https_url(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError("not an absolute https:// URL")
    if parts.query or parts.fragment:
        raise ValueError("must not contain a query or fragment")
    return value.strip().rstrip("/")


def _notification_url(value: str) -> str:
    # Graph delivers only to https; plain http is accepted for a receiver on this machine, as the
    # local tenant accepts it (tests and demos run the receiver on 127.0.0.1).
    parts = urlsplit(value.strip())
    if parts.scheme == "http" and (parts.hostname or "").lower() in ("localhost", "127.0.0.1", "::1"):
        if parts.fragment:
            raise ValueError("must not contain a fragment")
        return value.strip()
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError("not an absolute https:// URL (http:// only for localhost)")
    if parts.fragment:
        raise ValueError("must not contain a fragment")
    return value.strip()


def _authority(value: str) -> str:
    value = _https_url(value)
    if not urlsplit(value).path.strip("/"):
        raise ValueError("must be https://HOST/TENANT (the tenant segment is missing)")
    return value


def _default_scope(value: str) -> str:
    value = value.strip()
    if not value.endswith("/.default") or len(value) <= len("/.default"):
        raise ValueError("app-only scopes are RESOURCE/.default")
    return value


def _guid(value: str) -> str:
    try:
        return str(uuid.UUID(value.strip()))
    except ValueError:
        raise ValueError("not a GUID") from None


_DOMAIN = re.compile(r"^(?=.{4,253}$)[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+$")


def _tenant(value: str) -> str:
    value = value.strip()
    try:
        return str(uuid.UUID(value))
    except ValueError:
        pass
    if not _DOMAIN.match(value):
        raise ValueError("neither a GUID nor a domain name")
    return value.lower()


def _existing_file(value: Path) -> Path:
    path = value.expanduser()
    if not path.exists():
        raise ValueError(f"file not found: {path}")
    if not path.is_file():
        raise ValueError(f"not a file: {path}")
    return path.resolve()


def _time_zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError("unknown IANA time zone") from None
    return value


def _sqlite_url(value: str) -> str:
    # SQLite (a file in the data directory) or PostgreSQL; the store (bot/store) supports exactly these.
    if value.startswith("sqlite:///") and len(value) > len("sqlite:///"):
        return value
    if re.match(r"^postgresql(\+psycopg2?)?://[^/]+/\w", value):
        return value
    raise ValueError("expected sqlite:///PATH or postgresql[+psycopg]://USER:PASSWORD@HOST/DATABASE")


def _cron(value: str) -> str:
    # The shape only (the scheduler, bot/service/scheduling.py, checks ranges when the service starts).
    fields = value.split()
    if len(fields) != 5 or not all(re.fullmatch(r"[0-9*/,-]+", f) for f in fields):
        raise ValueError("expected five fields (minute hour day-of-month month day-of-week) of digits, *, "
                         "',', '-' and '/'")
    return " ".join(fields)


HttpsUrl = Annotated[str, AfterValidator(_https_url)]
NotificationUrl = Annotated[str, AfterValidator(_notification_url)]
Authority = Annotated[str, AfterValidator(_authority)]
Scope = Annotated[str, AfterValidator(_default_scope)]
Guid = Annotated[str, AfterValidator(_guid)]
TenantId = Annotated[str, AfterValidator(_tenant)]
ExistingFile = Annotated[Path, AfterValidator(_existing_file)]
TimeZone = Annotated[str, AfterValidator(_time_zone)]
SqliteUrl = Annotated[str, AfterValidator(_sqlite_url)]
CronExpression = Annotated[str, AfterValidator(_cron)]


# ---------------------------------------------------------------------------------------------- groups
class _Group(BaseModel):
    # A misspelt variable (CARTIF_AUTH__CLIENTID) is an error, not silently ignored.
    model_config = ConfigDict(extra="forbid")


class TenantSettings(_Group):
    """Which Entra ID tenant the bot signs in to."""

    id: TenantId = Field(description=(
        "The Entra ID tenant: its Directory (tenant) ID (a GUID) or a verified domain like "
        "contoso.onmicrosoft.com. Required, no default: app-only tokens are issued by one specific tenant."))
    authority: Authority = Field(
        default_factory=lambda data: f"{PUBLIC_AUTHORITY_HOST}/{data.get('id', '')}",
        description=(
            "The authority URL tokens are requested from (https://HOST/TENANT). Default: "
            "https://login.microsoftonline.com/{tenant id}, Microsoft's public cloud; sovereign clouds and "
            "the local tenant have their own host. For a non-Microsoft host msal's instance discovery "
            "is turned off."))


class AuthSettings(_Group):
    """How the bot's app registration proves who it is (app-only, client credentials)."""

    client_id: Guid = Field(description=(
        "The app registration's Application (client) ID (a GUID). Required, no default: Entra ID "
        "identifies the bot by it."))
    certificate_path: ExistingFile | None = Field(default=None, description=(
        "A PEM file holding the app's certificate and its private key. Default: none. A certificate is "
        "what SharePoint REST accepts for app-only access; msal signs the client assertion with the key "
        "and identifies the certificate by its SHA-256 thumbprint (x5t#S256)."))
    pfx_path: ExistingFile | None = Field(default=None, description=(
        "A PKCS#12 file (.pfx/.p12) with the app's certificate and private key. Default: none. The "
        "alternative to certificate_path for certificates exported from Windows or Key Vault; set only one."))
    certificate_passphrase: SecretStr | None = Field(default=None, description=(
        "The passphrase protecting the private key in certificate_path or pfx_path. Default: none "
        "(an unencrypted key). A secret."))
    client_secret: SecretStr | None = Field(default=None, description=(
        "A client secret of the app registration. Default: none. Accepted for Microsoft Graph only: "
        "SharePoint REST rejects app-only tokens obtained with a secret, so a secret alone cannot manage "
        "folder permissions. A certificate wins when both are set. A secret."))


class EndpointSettings(_Group):
    """Where Microsoft Graph and the SharePoint site are, and which CA to trust for them."""

    graph_url: HttpsUrl = Field(default=PUBLIC_GRAPH_URL, description=(
        "The Microsoft Graph base URL including the version segment. Default: "
        "https://graph.microsoft.com/v1.0, the public cloud's stable API (beta is never used)."))
    graph_scope: Scope = Field(default=PUBLIC_GRAPH_SCOPE, description=(
        "The OAuth scope of Graph tokens (RESOURCE/.default). Default: https://graph.microsoft.com/.default, "
        "which grants the app's consented application permissions."))
    site_url: HttpsUrl = Field(description=(
        "The absolute URL of the negotiation's SharePoint site, like "
        "https://contoso.sharepoint.com/sites/CARTIF. Required, no default: the bot manages exactly this "
        "one site."))
    sharepoint_host: str = Field(
        default_factory=lambda data: urlsplit(data.get("site_url", "")).hostname or "",
        description=(
            "The SharePoint hostname as Graph's composite site ids use it (contoso.sharepoint.com). "
            "Default: the host of site_url."))
    sharepoint_scope: Scope = Field(
        default_factory=lambda data: f"https://{urlsplit(data.get('site_url', '')).netloc}/.default",
        description=(
            "The OAuth scope of SharePoint REST tokens (RESOURCE/.default). Default: https://{host of "
            "site_url}/.default; SharePoint only accepts tokens whose audience is its own origin."))
    site_id: str | None = Field(default=None, description=(
        "The Graph id of the site (hostname,site-collection-id,web-id). Default: none, looked up from "
        "site_url at start-up; setting it saves one request per start."))
    drive_id: str | None = Field(default=None, description=(
        "The Graph id of the document library's drive. Default: none, the site's default library "
        "(\"Documents\") is looked up."))
    ca_path: ExistingFile | None = Field(default=None, description=(
        "A PEM file of CA certificates trusted for every endpoint (token, Graph, SharePoint). Default: "
        "none, the public CA bundle. When set, REQUESTS_CA_BUNDLE, SSL_CERT_FILE and proxy variables are "
        "ignored so that nothing in the environment can override it; a local tenant needs it."))
    admin_url: HttpsUrl | None = Field(default=None, description=(
        "The local tenant's admin API (statistics, fault injection). Default: none; Microsoft 365 has no "
        "such API, only a tenant file sets it."))


class HttpSettings(_Group):
    """Timeouts and the one retry layer (connectors.retrying; the Graph SDK's RetryHandler is off)."""

    timeout_seconds: float = Field(default=100.0, gt=0, description=(
        "Seconds one HTTP request may take in total. Default: 100, msgraph-sdk's own "
        "default; large transfers are chunked, so no single request needs longer."))
    connect_timeout_seconds: float = Field(default=30.0, gt=0, description=(
        "Seconds to wait for a TCP/TLS connection. Default: 30, msgraph-sdk's own default."))
    max_retries: int = Field(default=3, ge=0, le=10, description=(
        "Retries of a Graph request after the first attempt, 0 to 10: 429 and 503 on any method; 500, 502, "
        "504, connection resets and timeouts on idempotent methods only. Default: 3, the Graph SDK's default. "
        "Retry-After is honoured as the minimum wait for every request of the process, and a Retry-After "
        "of 180 s or more is not waited for (the error goes up)."))
    retry_delay_seconds: float = Field(default=3.0, ge=0, le=180, description=(
        "Seconds of the first back-off after a 5xx, a reset or a timeout, 0 to 180; each further retry "
        "doubles it (jittered, at most 60 s). Default: 3, the Graph SDK's own base delay. A Retry-After "
        "from the service is always the floor."))
    max_concurrency: int = Field(default=4, ge=1, le=16, description=(
        "Graph requests in flight at once, 1 to 16. Default: 4; onedrive's client reports that more than "
        "16 parallel requests get SharePoint to block it (anchors-sync-notify §1.3)."))


class SyncSettings(_Group):
    """How the delta sync treats what it reads (bot/syncing.py)."""

    max_deletion_share: float = Field(default=0.2, ge=0, le=1, description=(
        "The largest share of tracked items one sync may mark deleted without --confirm-deletions, "
        "0 to 1. Default: 0.2 (20 %): a library emptied by mistake (or a misbehaving client) must not "
        "silently become the bot's new truth; above it the sync stops and keeps its cursor."))
    page_size: int = Field(default=1000, ge=1, le=1000, description=(
        "Items per delta page ($top), 1 to 1,000. Default: 1,000: fewer pages mean fewer requests "
        "(1 RU each with a token). Microsoft serves at most about 1,000 items per drive page, so a "
        "larger value would change nothing and is refused; smaller values only make sense in tests."))
    crash_at: Literal["before_commit", "after_commit"] | None = Field(default=None, description=(
        "TEST ONLY — never set in production. Makes `cartif-bot sync` kill its own process (SIGKILL, "
        "like kill -9) at that point of the cycle: \"before_commit\" (pages read, nothing stored) or "
        "\"after_commit\" (changes and cursor committed). Default: none. The crash-injection tests use it "
        "to prove a killed sync loses and duplicates nothing."))


class StoreSettings(_Group):
    """Where the bot keeps its own state (the version register)."""

    data_dir: Path = Field(default=Path("var"), description=(
        "The directory for the bot's own files (register database, logs). Default: ./var relative to "
        "the working directory; created on first use."))
    url: SqliteUrl = Field(
        default_factory=lambda data: f"sqlite:///{Path(data.get('data_dir', 'var')) / 'cartif-bot.sqlite3'}",
        description=(
            "The store database (sync state, change log, audit, outbox) as sqlite:///PATH or "
            "postgresql+psycopg://USER:PASSWORD@HOST/DB. Default: sqlite:///{data_dir}/cartif-bot.sqlite3; "
            "SQLite keeps the store a single file that is easy to back up; PostgreSQL needs psycopg installed."))


class ScheduleSettings(_Group):
    """How often the reconcile cycle runs."""

    interval_seconds: int = Field(default=300, ge=1, description=(
        "Seconds between the starts of two reconcile cycles, at least 1. Default: 300 (5 minutes): drift "
        "is corrected within minutes while a cycle stays far below SharePoint's throttling budget; a few "
        "seconds suit only tests against the local tenant. Ignored when cron is set."))
    cron: CronExpression | None = Field(default=None, description=(
        "A cron expression (five fields: minute hour day-of-month month day-of-week, in UTC; *, lists, "
        "ranges and */steps) for when `cartif-bot run` starts cycles, e.g. \"*/10 7-19 * * 1-5\". Default: "
        "none, a cycle every interval_seconds. Office hours schedules spare the throttling budget at night."))


class TeamsSettings(_Group):
    """Where notices go, and how they show dates."""

    webhooks: dict[str, SecretStr] = Field(default_factory=dict, description=(
        "Workflows (incoming webhook) URLs per Teams channel, as JSON {\"channel name\": \"https://…\"}. "
        "Default: none, so no notices are posted. Secrets: anyone holding a URL can post to its channel."))
    time_zone: TimeZone = Field(default="Asia/Manila", description=(
        "The IANA time zone for dates and times in notices. Default: Asia/Manila, where the CAREC "
        "secretariat (ADB) sits and deadlines are set."))
    debounce_seconds: float = Field(default=120.0, ge=0, le=86400, description=(
        "Seconds a channel's change notices wait for more changes before they go out as one card, 0 to "
        "86,400. Default: 120 (2 minutes): an upload of 5 files becomes one \"5 files changed\" card "
        "instead of 5, and notices still arrive within minutes. Circulated texts never wait."))
    max_attempts: int = Field(default=8, ge=1, le=100, description=(
        "Delivery attempts of a notice before it is parked (cartif-bot notices list --failed), 1 to 100. "
        "Default: 8; with the default back-off that rides out a Teams outage of about an hour."))
    backoff_seconds: float = Field(default=30.0, ge=0, le=3600, description=(
        "Seconds before the second delivery attempt of a notice; each further attempt doubles it, up to "
        "backoff_max_seconds. Default: 30 (the transport already retried 429/503 inside the request)."))
    backoff_max_seconds: float = Field(default=1800.0, ge=0, le=86400, description=(
        "The longest wait between two delivery attempts, in seconds. Default: 1,800 (30 minutes)."))
    daily_digest_hour: int | None = Field(default=None, ge=0, le=23, description=(
        "The local hour (0 to 23, in time_zone) after which each channel gets one digest card of the "
        "notices it received in the previous 24 hours. Default: none, no daily digest; the per-change "
        "cards already arrive within minutes, the digest is for readers who mute the channel."))
    lease_seconds: float = Field(default=900.0, gt=0, le=86400, description=(
        "Seconds after which a notice still marked as being sent counts as interrupted (a crash between "
        "sending and marking sent) and is parked for the operator. Default: 900, above one request's "
        "timeout (http.timeout_seconds, 100 s) times its attempts (1 + http.max_retries) plus Retry-After waits."))
    outbox_retention_days: int = Field(default=30, ge=2, le=3650, description=(
        "Days delivered notices, parked (failed) notices and routed change references stay in the outbox "
        "before the notices step deletes them, 2 to 3,650. Default: 30, long enough to read back what went "
        "out (cartif-bot notices list) and to retry a parked notice; pending ones are never deleted. At "
        "least 2: the daily digest reads the last 24 hours of sent notices."))


class NotificationSettings(_Group):
    """Graph change notifications for the library (optional; polling works without them)."""

    url: NotificationUrl | None = Field(default=None, description=(
        "The public https URL where Graph delivers change notifications for the library (http only for "
        "localhost). Default: none, changes are found by polling delta every poll_seconds."))
    client_state: SecretStr | None = Field(default=None, max_length=128, description=(
        "The clientState secret sent with each subscription and echoed in every notification, at most "
        "128 characters. Default: none; required when url is set, since it is how forged notifications "
        "are told apart. A secret."))
    poll_seconds: int = Field(default=900, ge=10, description=(
        "Seconds between two safety-net delta polls of `cartif-bot watch`, at least 10. Default: 900 "
        "(15 minutes): notifications can be lost or late, so a poll catches anything they missed; "
        "without a notification URL this is how often changes are found."))


class PermissionsSettings(_Group):
    """The permission cycle (plan / apply / access): which structure file, and guard overrides."""

    structure_path: Path = Field(default=DEFAULT_STRUCTURE, description=(
        "The declared negotiation structure (YAML). Default: the shipped config/cartif.yaml. The CLI's "
        "--structure flag overrides it for one command."))
    max_removal_share: float | None = Field(default=None, ge=0, le=1, description=(
        "Overrides the structure's guard.max_removal_share: the largest share of existing grants or group "
        "members one apply may remove without --force, 0 to 1. Default: none, the structure's value (0.2 "
        "in cartif.yaml); an operator can tighten it per deployment without editing the structure."))
    min_guarded_removals: int | None = Field(default=None, ge=0, description=(
        "Overrides the structure's guard.min_guarded_removals: below this many removals the share is not "
        "checked. Default: none, the structure's value (10 in cartif.yaml)."))


class ServiceSettings(_Group):
    """`cartif-bot run`: the HTTP server, who may trigger a sync, logs, and leader election."""

    host: str = Field(default="127.0.0.1", description=(
        "The address the service's HTTP server binds (notifications, /api, health, metrics). Default: "
        "127.0.0.1, behind a reverse proxy that terminates TLS; 0.0.0.0 in a container."))
    port: int = Field(default=8080, ge=0, le=65535, description=(
        "The TCP port of the HTTP server, 0 for a free one (logged at start). Default: 8080."))
    api_token: SecretStr | None = Field(default=None, min_length=16, description=(
        "A static bearer token that may call POST /api/sync, at least 16 characters. Default: none, only "
        "Entra ID tokens are accepted. For scripts that cannot get an Entra ID token; compared in constant "
        "time. A secret."))
    app_id_uri: str | None = Field(default=None, description=(
        "The Application ID URI of the bot's API (api://{client id}): the audience an Entra ID access token "
        "must carry to call POST /api/sync. Default: none, Entra ID tokens are refused; a local tenant's "
        "file sets it."))
    required_role: str = Field(default="Sync.Trigger", min_length=1, description=(
        "The app role an Entra ID access token must carry (roles claim) to call POST /api/sync. Default: "
        "Sync.Trigger, the role the bot's app registration defines and the secretariat's app is granted."))
    log_format: Literal["text", "json"] = Field(default="text", description=(
        "How the service logs: \"text\" lines or \"json\" (one object per line with time, level, logger, "
        "message and run_id). Default: text; json for log shippers (journald, Loki, Elastic)."))
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description=(
        "The lowest log level written. Default: INFO, one line per cycle and step."))
    standby_poll_seconds: float = Field(default=10.0, gt=0, description=(
        "Seconds between a standby replica's attempts to take the leader lock (PostgreSQL), capped at "
        "schedule.interval_seconds so a standby takes over within one interval. Default: 10."))
    lock_key: int = Field(default=0x43415254, description=(
        "The PostgreSQL advisory lock key the leader holds (a 64-bit integer). Default: 1128354388 "
        "(\"CART\"); two deployments sharing one database need different keys."))
    keep_runs: int = Field(default=100, ge=1, description=(
        "How many runs the service keeps in memory with their live progress (GET /api/runs/{id} while "
        "queued or running); finished runs are read from the store's run history (run_history_days). "
        "Default: 100."))
    run_history_days: int = Field(default=90, ge=1, le=3650, description=(
        "Days the store keeps the service's run history (GET /api/runs, /api/status), 1 to 3,650. "
        "Default: 90, a quarter of cycles to look back on (about 26,000 rows at one cycle per 5 minutes); "
        "older runs are deleted at the end of each run."))


def _default_secrets_dir() -> Path | None:
    return DEFAULT_SECRETS_DIR if DEFAULT_SECRETS_DIR.is_dir() else None


# ---------------------------------------------------------------------------------------------- sources
#: tenant.json key → settings path. Other keys (the unprivileged app, data_dir) are for tests.
TENANT_FILE_KEYS: dict[str, tuple[str, str]] = {
    "tenant_id": ("tenant", "id"),
    "authority": ("tenant", "authority"),
    "client_id": ("auth", "client_id"),
    "certificate_path": ("auth", "certificate_path"),
    "graph_url": ("endpoints", "graph_url"),
    "graph_scope": ("endpoints", "graph_scope"),
    "site_url": ("endpoints", "site_url"),
    "sharepoint_host": ("endpoints", "sharepoint_host"),
    "sharepoint_scope": ("endpoints", "sharepoint_scope"),
    "site_id": ("endpoints", "site_id"),
    "drive_id": ("endpoints", "drive_id"),
    "ca_path": ("endpoints", "ca_path"),
    "admin_url": ("endpoints", "admin_url"),
    "teams_webhooks": ("teams", "webhooks"),
    "api_app_id_uri": ("service", "app_id_uri"),
}
_TENANT_FILE_PATHS = frozenset({"certificate_path", "ca_path"})


class TenantFileSource(PydanticBaseSettingsSource):
    """Settings from a local tenant's ``tenant.json``, below every explicit source."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ maps the whole file at once

    def __call__(self) -> dict[str, Any]:
        raw = self.current_state.get("tenant_file")
        if not raw:
            return {}
        path = Path(raw).expanduser()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise _SourceError("tenant_file", f"cannot read {path} ({exc.strerror or exc})") from exc
        except ValueError as exc:
            raise _SourceError("tenant_file", f"{path} is not JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise _SourceError("tenant_file", f"{path} does not hold a JSON object")
        out: dict[str, Any] = {}
        for key, (group, name) in TENANT_FILE_KEYS.items():
            value = data.get(key)
            if value is None:
                continue
            if key in _TENANT_FILE_PATHS:
                # Relative paths in the file are relative to the file, not to the working directory.
                value = str((path.parent / str(value)).resolve())
            out.setdefault(group, {})[name] = value
        return out


class _SourceError(Exception):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field = field
        self.problem = problem


#: Filled by the probe during ``Settings.load()``: each source's raw values, for ``config show``.
_RECORDED: contextvars.ContextVar[dict[str, dict[str, Any]] | None] = contextvars.ContextVar(
    "cartif_settings_sources", default=None)
_SOURCE_LABELS = {
    "InitSettingsSource": "argument",
    "EnvSettingsSource": "env",
    "DotEnvSettingsSource": ".env",
    "NestedSecretsSettingsSource": "secrets",
    "TenantFileSource": "tenant file",
}


class _ProvenanceProbe(PydanticBaseSettingsSource):
    """Contributes nothing; records what the sources above it returned."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        recorded = _RECORDED.get()
        if recorded is not None:
            recorded.update(self.settings_sources_data)
        return {}


# ---------------------------------------------------------------------------------------------- settings
class SettingEntry(NamedTuple):
    """One leaf setting as ``config show`` prints it (secrets already masked)."""

    group: str
    name: str
    variable: str
    value: Any
    source: str
    secret: bool


class Settings(BaseSettings):
    """All of cartif-bot's settings. Build with ``Settings.load()``; tests may pass values directly."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        case_sensitive=False,
        extra="forbid",
    )

    tenant_file: Path | None = Field(default=None, description=(
        "A local tenant's connection file (tenant.json) to take tenant, auth, endpoint and Teams settings "
        "from. Default: none. Explicitly set variables still win over the file."))
    secrets_dir: Path | None = Field(default_factory=_default_secrets_dir, description=(
        "A directory with one file per secret setting, named like the variable (cartif_auth__client_secret). "
        "Default: /run/secrets when it exists (Docker and Kubernetes mount secrets there), else none."))
    tenant: TenantSettings = Field(description="Which Entra ID tenant the bot signs in to.")
    auth: AuthSettings = Field(description="How the bot's app registration authenticates.")
    endpoints: EndpointSettings = Field(description="Graph, the SharePoint site and the trusted CA.")
    http: HttpSettings = Field(default_factory=HttpSettings, description="Timeouts and Graph retries.")
    store: StoreSettings = Field(default_factory=StoreSettings, description="The bot's own state.")
    sync: SyncSettings = Field(default_factory=SyncSettings, description="The delta sync.")
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings, description="The cycle's rhythm.")
    teams: TeamsSettings = Field(default_factory=TeamsSettings, description="Teams notices.")
    notifications: NotificationSettings = Field(default_factory=NotificationSettings,
                                                description="Graph change notifications.")
    service: ServiceSettings = Field(default_factory=ServiceSettings,
                                     description="`cartif-bot run`: HTTP server, triggers, logs, leadership.")
    permissions: PermissionsSettings = Field(default_factory=PermissionsSettings,
                                             description="The permission cycle's structure file and guard.")

    #: dotted path → where the value came from ("env", "tenant file", …); filled by load()
    _sources: dict[str, str] = PrivateAttr(default_factory=dict)

    #: groups whose fields are derived from other fields when unset
    _DERIVED: ClassVar[frozenset[str]] = frozenset({
        "tenant.authority", "endpoints.sharepoint_host", "endpoints.sharepoint_scope", "store.url"})

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        secrets = NestedSecretsSettingsSource(file_secret_settings, secrets_nested_delimiter="__",
                                              secrets_dir_missing="ok")
        return (init_settings, env_settings, dotenv_settings, secrets, TenantFileSource(settings_cls),
                _ProvenanceProbe(settings_cls))

    def model_post_init(self, context: Any, /) -> None:
        self._check_cross_field()

    def _check_cross_field(self) -> None:
        auth = self.auth
        if auth.certificate_path and auth.pfx_path:
            raise SettingsError(_line(("auth", "pfx_path"), "conflicts with CARTIF_AUTH__CERTIFICATE_PATH; "
                                      "set only one"), variables=(_env_name(("auth", "pfx_path")),))
        if not (auth.certificate_path or auth.pfx_path or auth.client_secret):
            raise SettingsError(
                _line(("auth", "certificate_path"), "required — a PEM file with the app's certificate and "
                      "private key (or set CARTIF_AUTH__PFX_PATH, or CARTIF_AUTH__CLIENT_SECRET for "
                      "Graph-only use)", describe=False),
                variables=(_env_name(("auth", "certificate_path")),))
        if self.notifications.url and not self.notifications.client_state:
            raise SettingsError(_line(("notifications", "client_state"), "required when "
                                      "CARTIF_NOTIFICATIONS__URL is set"),
                                variables=(_env_name(("notifications", "client_state")),))

    # ------------------------------------------------------------------------------------------ loading
    @classmethod
    def load(cls, *, env_file: Path | str | None = ".env", **overrides: Any) -> Settings:
        """The effective settings from every source; the single entry point of the application.

        ``env_file`` is the dotenv file to read (``None`` for none); ``overrides`` are values that
        beat every source (``tenant={"id": …}``), for tests and CLI flags. Raises ``SettingsError``.
        """
        secrets_dir = _effective_secrets_dir(env_file, overrides)
        recorded: dict[str, dict[str, Any]] = {}
        token = _RECORDED.set(recorded)
        try:
            settings = cls(_env_file=env_file, _secrets_dir=secrets_dir, **overrides)  # type: ignore[call-arg]
        except ValidationError as exc:
            raise _from_validation_error(exc) from exc
        except _SourceError as exc:
            raise SettingsError(_line((exc.field,), exc.problem),
                                variables=(_env_name((exc.field,)),)) from exc
        except PydanticSettingsError as exc:
            raise _from_source_error(exc) from exc
        finally:
            _RECORDED.reset(token)
        settings._sources = _provenance(recorded)
        return settings

    # ------------------------------------------------------------------------------------------ display
    def source_of(self, path: str) -> str:
        """Where the value at ``path`` ("auth.client_id") came from: env, .env, secrets, tenant file,
        argument, derived or default."""
        if path in self._sources:
            return self._sources[path]
        return "derived" if path in self._DERIVED else "default"

    def entries(self) -> Iterator[SettingEntry]:
        """Every leaf setting in declaration order, secrets masked, with its source."""
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            if isinstance(value, BaseModel):
                for sub, sub_field in type(value).model_fields.items():
                    yield self._entry(name, sub, getattr(value, sub), sub_field)
            else:
                yield self._entry("general", name, value, field)

    def _entry(self, group: str, name: str, value: Any, field: FieldInfo) -> SettingEntry:
        path = name if group == "general" else f"{group}.{name}"
        return SettingEntry(group=group, name=name, variable=_env_name(tuple(path.split("."))),
                            value=_display(value), source=self.source_of(path), secret=_is_secret(field))


_URL_PASSWORD = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/@:]*:)(?P<password>[^/@]*)@")


def mask_url_password(value: str) -> str:
    """``postgresql+psycopg://bot:s3cret@db/cartif`` → ``postgresql+psycopg://bot:**********@db/cartif``:
    a database URL's password never reaches output, logs or error messages."""
    return _URL_PASSWORD.sub(lambda m: f"{m.group('head')}{MASK}@", value, count=1)


def _display(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, str):
        return mask_url_password(value)
    if isinstance(value, Mapping):
        return {str(k): _display(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def _effective_secrets_dir(env_file: Path | str | None, overrides: Mapping[str, Any]) -> Path | None:
    """The secrets directory must be known before the sources run, so it is resolved here first."""
    explicit: Any = overrides.get("secrets_dir")
    if explicit is None:
        wanted = f"{ENV_PREFIX}SECRETS_DIR"
        explicit = next((v for k, v in os.environ.items() if k.upper() == wanted and v), None)
        if explicit is None and env_file is not None and Path(env_file).is_file():
            from_file = dotenv_values(env_file).items()
            explicit = next((v for k, v in from_file if k.upper() == wanted and v), None)
    if explicit is None:
        return _default_secrets_dir()
    path = Path(explicit).expanduser()
    if not path.is_dir():
        raise SettingsError(_line(("secrets_dir",), f"directory not found: {path}"),
                            variables=(_env_name(("secrets_dir",)),))
    return path


def _provenance(recorded: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """dotted path → label of the highest-priority source that set it (sources are in priority order)."""
    out: dict[str, str] = {}
    for source, state in recorded.items():
        label = _SOURCE_LABELS.get(source)
        if label is None:
            continue
        for path in _leaf_paths(Settings, state):
            out.setdefault(path, label)
    return out


def _leaf_paths(model: type[BaseModel], state: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    fields = {name.lower(): (name, field) for name, field in model.model_fields.items()}
    for key, value in state.items():
        match = fields.get(str(key).lower())
        if match is None:
            continue
        name, field = match
        sub = _model_of(field)
        if sub is not None and isinstance(value, Mapping):
            yield from _leaf_paths(sub, value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}"


# ---------------------------------------------------------------------------------------------- errors
def _model_of(field: FieldInfo) -> type[BaseModel] | None:
    annotation = field.annotation
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _env_name(loc: tuple[str, ...]) -> str:
    return ENV_PREFIX + "__".join(loc).upper()


def _field_at(loc: tuple[str, ...]) -> FieldInfo | None:
    model: type[BaseModel] | None = Settings
    field: FieldInfo | None = None
    for part in loc:
        if model is None or part not in model.model_fields:
            return None
        field = model.model_fields[part]
        model = _model_of(field)
    return field


def _expects(field: FieldInfo | None) -> str:
    """The first sentence of a field's description, as the "what is expected" part of a message."""
    text = (field.description if field else None) or ""
    match = re.match(r"(.+?)\.(?:\s|$)", text)
    sentence = match.group(1) if match else text
    first_word = sentence.split(" ", 1)[0]
    if first_word[:1].isupper() and (len(first_word) == 1 or first_word[1:].islower()):
        sentence = sentence[0].lower() + sentence[1:]  # "A PEM file" → "a PEM file", "URL" stays
    return sentence


def _is_secret(field: FieldInfo | None) -> bool:
    return field is not None and "SecretStr" in repr(field.annotation)


def _line(loc: tuple[str, ...], problem: str, *, describe: bool = True) -> str:
    expects = _expects(_field_at(loc)) if describe else ""
    return f"{_env_name(loc)}: {problem}" + (f" — {expects}" if expects else "")


def _problems(error: Mapping[str, Any]) -> Iterator[tuple[tuple[str, ...], str]]:
    """(field location, problem) for one pydantic error; a missing group yields its required fields."""
    raw_loc = tuple(error["loc"])
    loc: list[str] = []
    model: type[BaseModel] | None = Settings
    rest: list[Any] = []
    for i, part in enumerate(raw_loc):
        if model is not None and isinstance(part, str) and part in model.model_fields:
            loc.append(part)
            model = _model_of(model.model_fields[part])
        else:
            rest = list(raw_loc[i:])
            break
    kind = error["type"]
    if kind == "default_factory_not_called":
        return  # a derived default whose inputs failed: the inputs' own errors say what to fix
    if kind == "missing" and model is not None and not rest:
        # A whole group is absent: name each of its required fields, which is what the user must set.
        for name, field in model.model_fields.items():
            if field.is_required():
                yield (*loc, name), "required"
        return
    if kind == "missing":
        yield tuple(loc), "required"
        return
    if kind == "extra_forbidden":
        unknown = str(rest[0]) if rest else "?"
        known = ", ".join(model.model_fields) if model is not None else ""
        yield (*loc, unknown), f"unknown setting (known here: {known})"
        return
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if rest:  # inside a dict or list value: say which key
        message = f"{message} (at {'/'.join(str(r) for r in rest)})"
    target = _field_at(tuple(loc))
    value = error.get("input")
    if (not _is_secret(target) and isinstance(value, (str, int, float)) and not isinstance(value, bool)
            and str(value) not in message):
        value = mask_url_password(value) if isinstance(value, str) else value
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "…"
        message = f"invalid ({shown}: {message})"
    else:
        message = f"invalid ({message})"
    yield tuple(loc), message


def _from_validation_error(exc: ValidationError) -> SettingsError:
    found: list[tuple[tuple[str, ...], str]] = []
    for error in exc.errors(include_url=False):
        found.extend(_problems(error))
    if not found:  # pragma: no cover - pydantic always reports at least one error
        return SettingsError(f"invalid settings: {exc}")
    (loc, problem), others = found[0], found[1:]
    extra_known = _field_at(loc) is not None
    line = _line(loc, problem, describe=extra_known)
    if others:
        line += f" (and {len(others)} more: {', '.join(_env_name(o) for o, _ in others)})"
    return SettingsError(line, variables=tuple(_env_name(loc) for loc, _ in found))


def _from_source_error(exc: PydanticSettingsError) -> SettingsError:
    # pydantic-settings says 'error parsing value for field "teams" from source "EnvSettingsSource"'
    # when a complex value (JSON) does not parse; name the variable and the expected format.
    text = str(exc)
    match = re.search(r'field "([^"]+)" from source "([^"]+)"', text)
    if match:
        loc: tuple[str, ...] = (match.group(1),)
        origin = _SOURCE_LABELS.get(match.group(2), match.group(2))
        top = _field_at(loc)
        group = _model_of(top) if top is not None else None
        if group is not None:  # the JSON sits in one of the group's dict/list fields; name it if only one
            structured = [n for n, f in group.model_fields.items()
                          if getattr(f.annotation, "__origin__", None) in (dict, list)]
            if len(structured) == 1:
                loc = (*loc, structured[0])
        return SettingsError(f"{_env_name(loc)}: invalid (not valid JSON, from {origin}) — "
                             f"{_expects(_field_at(loc))}", variables=(_env_name(loc),))
    return SettingsError(f"settings: {text}")
