"""We test these aspects of config.settings:

* the CARTIF_ prefix and the ``__`` group delimiter, from the environment, a .env file and a
  secrets directory, in that priority order;
* a tenant file filling tenant, auth, endpoint and Teams settings, with explicit values winning;
* defaults pointing at Microsoft's public cloud, and derived values (authority, SharePoint scope);
* every problem reported as ONE line naming the variable and what it expects;
* secrets masked everywhere (str/repr, entries, error messages);
* every field documented.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr

import config.settings as settings_module
from config.settings import MASK, Settings, SettingsError
from tests.unit.isolation import clean_environ  # noqa: F401 - an autouse fixture

CLIENT_ID = "3f0c6d2e-1111-2222-3333-444455556666"
SITE = "https://contoso.sharepoint.com/sites/CARTIF"


@pytest.fixture
def pem(tmp_path: Path) -> Path:
    path = tmp_path / "bot.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n…\n-----END CERTIFICATE-----\n")
    return path


@pytest.fixture
def minimal_env(monkeypatch: pytest.MonkeyPatch, pem: Path) -> None:
    monkeypatch.setenv("CARTIF_TENANT__ID", "contoso.onmicrosoft.com")
    monkeypatch.setenv("CARTIF_AUTH__CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("CARTIF_AUTH__CERTIFICATE_PATH", str(pem))
    monkeypatch.setenv("CARTIF_ENDPOINTS__SITE_URL", SITE)


def tenant_file(tmp_path: Path, **changes: Any) -> Path:
    (tmp_path / "certs").mkdir(exist_ok=True)
    (tmp_path / "certs" / "app-bot.pem").write_text("pem")
    (tmp_path / "certs" / "ca.pem").write_text("ca")
    data: dict[str, Any] = {
        "tenant_id": "e08dd3a9-26ff-4d8f-a803-c96a61f2af74",
        "authority": "https://localhost:40291/e08dd3a9-26ff-4d8f-a803-c96a61f2af74",
        "graph_url": "https://localhost:40291/v1.0",
        "sharepoint_host": "localhost",
        "site_url": "https://localhost:40291/sites/CARTIF",
        "site_id": "localhost,2e6ed368-e6c6-4c74-8539-5198e59df8b7,877c905a-10c8-4f6f-ac86-34149ad56569",
        "drive_id": "b!aNNuLsbmdEyFOVGY5Z34t1qQ",
        "client_id": "d5b230d7-2a7e-46d6-9072-687ba7bc1cad",
        "certificate_path": "certs/app-bot.pem",  # relative: to the file, not to the working directory
        "ca_path": str(tmp_path / "certs" / "ca.pem"),
        "graph_scope": "https://graph.microsoft.com/.default",
        "sharepoint_scope": "https://localhost:40291/.default",
        "admin_url": "https://localhost:40291/_admin",
        "teams_webhooks": {"Plenary": "https://localhost:40291/teams/webhooks/0123", "WG-TF": "https://h/x"},
        "unprivileged_client_id": "ce125ce0-cb95-4625-a3bc-4a8a7349f49c",
        "data_dir": str(tmp_path),
        **changes,
    }
    path = tmp_path / "tenant.json"
    path.write_text(json.dumps(data))
    return path


def load_error(**kwargs: Any) -> str:
    with pytest.raises(SettingsError) as info:
        Settings.load(**kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------------------------------------- sources
@pytest.mark.usefixtures("minimal_env")
def test_prefixed_nested_variables_fill_their_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARTIF_SCHEDULE__INTERVAL_SECONDS", "120")
    monkeypatch.setenv("cartif_http__max_retries", "5")  # names are case-insensitive
    monkeypatch.setenv("SCHEDULE__INTERVAL_SECONDS", "999")  # no prefix: not ours
    settings = Settings.load()
    assert settings.tenant.id == "contoso.onmicrosoft.com"
    assert settings.auth.client_id == CLIENT_ID
    assert settings.schedule.interval_seconds == 120
    assert settings.http.max_retries == 5
    assert settings.source_of("schedule.interval_seconds") == "env"
    assert settings.source_of("store.data_dir") == "default"


@pytest.mark.usefixtures("minimal_env")
def test_defaults_point_at_microsofts_public_cloud() -> None:
    settings = Settings.load()
    assert settings.tenant.authority == "https://login.microsoftonline.com/contoso.onmicrosoft.com"
    assert settings.endpoints.graph_url == "https://graph.microsoft.com/v1.0"
    assert settings.endpoints.graph_scope == "https://graph.microsoft.com/.default"
    assert settings.endpoints.sharepoint_scope == "https://contoso.sharepoint.com/.default"
    assert settings.endpoints.sharepoint_host == "contoso.sharepoint.com"
    assert settings.endpoints.ca_path is None
    assert settings.store.url == "sqlite:///var/cartif-bot.sqlite3"
    assert settings.source_of("tenant.authority") == "derived"
    assert settings.source_of("endpoints.graph_url") == "default"


def test_sharepoint_scope_keeps_the_port_of_the_site(monkeypatch: pytest.MonkeyPatch, pem: Path) -> None:
    settings = Settings.load(env_file=None, tenant={"id": "contoso.onmicrosoft.com"},
                             auth={"client_id": CLIENT_ID, "certificate_path": pem},
                             endpoints={"site_url": "https://localhost:8443/sites/CARTIF/"})
    assert settings.endpoints.site_url == "https://localhost:8443/sites/CARTIF"
    assert settings.endpoints.sharepoint_scope == "https://localhost:8443/.default"
    assert settings.endpoints.sharepoint_host == "localhost"


@pytest.mark.usefixtures("minimal_env")
def test_environment_beats_dotenv_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("CARTIF_SCHEDULE__INTERVAL_SECONDS=600\n"
                                   "CARTIF_TEAMS__TIME_ZONE=Asia/Tbilisi\n")
    monkeypatch.setenv("CARTIF_SCHEDULE__INTERVAL_SECONDS", "60")
    settings = Settings.load()
    assert settings.schedule.interval_seconds == 60
    assert settings.teams.time_zone == "Asia/Tbilisi"
    assert settings.source_of("teams.time_zone") == ".env"
    assert Settings.load(env_file=None).teams.time_zone == "Asia/Manila"


@pytest.mark.usefixtures("minimal_env")
def test_secrets_directory_supplies_nested_secrets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "cartif_auth__client_secret").write_text("s3cr3t-from-file\n")
    monkeypatch.setenv("CARTIF_SECRETS_DIR", str(secrets))
    settings = Settings.load()
    assert settings.auth.client_secret is not None
    assert settings.auth.client_secret.get_secret_value() == "s3cr3t-from-file"
    assert settings.source_of("auth.client_secret") == "secrets"
    assert settings.secrets_dir == secrets


@pytest.mark.usefixtures("minimal_env")
def test_default_secrets_dir_is_used_when_it_exists(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    run_secrets = tmp_path / "run-secrets"
    run_secrets.mkdir()
    (run_secrets / "CARTIF_NOTIFICATIONS__CLIENT_STATE").write_text("state")
    monkeypatch.setattr(settings_module, "DEFAULT_SECRETS_DIR", run_secrets)
    settings = Settings.load()
    assert settings.secrets_dir == run_secrets
    assert settings.notifications.client_state == SecretStr("state")


@pytest.mark.usefixtures("minimal_env")
def test_missing_secrets_dir_names_the_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CARTIF_SECRETS_DIR", str(tmp_path / "nope"))
    assert load_error().startswith("CARTIF_SECRETS_DIR: directory not found:")


# ---------------------------------------------------------------------------------------------- tenant file
def test_tenant_file_fills_tenant_auth_endpoints_and_teams(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    path = tenant_file(tmp_path)
    monkeypatch.setenv("CARTIF_TENANT_FILE", str(path))
    settings = Settings.load()
    assert settings.tenant.id == "e08dd3a9-26ff-4d8f-a803-c96a61f2af74"
    assert settings.tenant.authority == "https://localhost:40291/e08dd3a9-26ff-4d8f-a803-c96a61f2af74"
    assert settings.auth.client_id == "d5b230d7-2a7e-46d6-9072-687ba7bc1cad"
    assert settings.auth.certificate_path == tmp_path / "certs" / "app-bot.pem"
    assert settings.endpoints.graph_url == "https://localhost:40291/v1.0"
    assert settings.endpoints.sharepoint_scope == "https://localhost:40291/.default"
    assert settings.endpoints.site_id is not None
    assert settings.endpoints.site_id.startswith("localhost,")
    assert settings.endpoints.ca_path == tmp_path / "certs" / "ca.pem"
    assert settings.endpoints.admin_url == "https://localhost:40291/_admin"
    assert settings.teams.webhooks["Plenary"].get_secret_value().endswith("/0123")
    assert settings.source_of("auth.client_id") == "tenant file"
    assert settings.source_of("tenant_file") == "env"


def test_explicit_variables_beat_the_tenant_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CARTIF_TENANT_FILE", str(tenant_file(tmp_path)))
    monkeypatch.setenv("CARTIF_AUTH__CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("CARTIF_ENDPOINTS__GRAPH_URL", "https://graph.example.org/v1.0")
    (tmp_path / ".env").write_text("CARTIF_ENDPOINTS__DRIVE_ID=from-dotenv\n")
    settings = Settings.load()
    assert settings.auth.client_id == CLIENT_ID
    assert settings.source_of("auth.client_id") == "env"
    assert settings.endpoints.graph_url == "https://graph.example.org/v1.0"
    assert settings.endpoints.drive_id == "from-dotenv"
    # the rest still comes from the file
    assert settings.auth.certificate_path == tmp_path / "certs" / "app-bot.pem"


def test_tenant_file_given_as_argument(tmp_path: Path) -> None:
    settings = Settings.load(env_file=None, tenant_file=tenant_file(tmp_path))
    assert settings.endpoints.site_url == "https://localhost:40291/sites/CARTIF"


def test_unreadable_tenant_file_names_the_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CARTIF_TENANT_FILE", str(tmp_path / "missing.json"))
    message = load_error()
    assert message.startswith("CARTIF_TENANT_FILE: cannot read ")
    (tmp_path / "broken.json").write_text("{not json")
    monkeypatch.setenv("CARTIF_TENANT_FILE", str(tmp_path / "broken.json"))
    assert "is not JSON" in load_error()


def test_tenant_file_pointing_at_a_missing_certificate(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    monkeypatch.setenv("CARTIF_TENANT_FILE", str(tenant_file(tmp_path, certificate_path="certs/gone.pem")))
    assert load_error().startswith("CARTIF_AUTH__CERTIFICATE_PATH: invalid (file not found: ")


# ---------------------------------------------------------------------------------------------- errors
def test_missing_client_id_is_one_line_naming_the_variable(monkeypatch: pytest.MonkeyPatch,
                                                           pem: Path) -> None:
    monkeypatch.setenv("CARTIF_TENANT__ID", "contoso.onmicrosoft.com")
    monkeypatch.setenv("CARTIF_AUTH__CERTIFICATE_PATH", str(pem))
    monkeypatch.setenv("CARTIF_ENDPOINTS__SITE_URL", SITE)
    assert load_error() == ("CARTIF_AUTH__CLIENT_ID: required — the app registration's Application (client) "
                            "ID (a GUID)")


def test_nothing_set_names_the_first_variable_and_counts_the_rest() -> None:
    with pytest.raises(SettingsError) as info:
        Settings.load()
    assert str(info.value).startswith("CARTIF_TENANT__ID: required — the Entra ID tenant")
    assert str(info.value).endswith("(and 2 more: CARTIF_AUTH__CLIENT_ID, CARTIF_ENDPOINTS__SITE_URL)")
    assert info.value.variables == ("CARTIF_TENANT__ID", "CARTIF_AUTH__CLIENT_ID",
                                    "CARTIF_ENDPOINTS__SITE_URL")


@pytest.mark.usefixtures("minimal_env")
@pytest.mark.parametrize(("variable", "value", "expected"), [
    ("CARTIF_ENDPOINTS__GRAPH_URL", "graph.microsoft.com",
     "CARTIF_ENDPOINTS__GRAPH_URL: invalid ('graph.microsoft.com': not an absolute https:// URL) — the "
     "Microsoft Graph base URL including the version segment"),
    ("CARTIF_ENDPOINTS__SITE_URL", "http://contoso.sharepoint.com/sites/x",
     "CARTIF_ENDPOINTS__SITE_URL: invalid ('http://contoso.sharepoint.com/sites/x': not an absolute https:// "
     "URL) — the absolute URL of the negotiation's SharePoint site, like "
     "https://contoso.sharepoint.com/sites/CARTIF"),
    ("CARTIF_TENANT__AUTHORITY", "https://login.microsoftonline.com",
     "CARTIF_TENANT__AUTHORITY: invalid ('https://login.microsoftonline.com': must be https://HOST/TENANT "
     "(the tenant segment is missing)) — the authority URL tokens are requested from (https://HOST/TENANT)"),
    ("CARTIF_AUTH__CLIENT_ID", "bot",
     "CARTIF_AUTH__CLIENT_ID: invalid ('bot': not a GUID) — the app registration's Application (client) ID "
     "(a GUID)"),
    ("CARTIF_ENDPOINTS__SHAREPOINT_SCOPE", "https://contoso.sharepoint.com",
     "CARTIF_ENDPOINTS__SHAREPOINT_SCOPE: invalid ('https://contoso.sharepoint.com': app-only scopes are "
     "RESOURCE/.default) — the OAuth scope of SharePoint REST tokens (RESOURCE/.default)"),
    ("CARTIF_SCHEDULE__INTERVAL_SECONDS", "0",
     "CARTIF_SCHEDULE__INTERVAL_SECONDS: invalid ('0': Input should be greater than or equal to 1) — "
     "seconds between the starts of two reconcile cycles, at least 1"),
    ("CARTIF_SYNC__PAGE_SIZE", "5000",
     "CARTIF_SYNC__PAGE_SIZE: invalid ('5000': Input should be less than or equal to 1000) — items per delta "
     "page ($top), 1 to 1,000"),
    ("CARTIF_TEAMS__TIME_ZONE", "Mars/Olympus",
     "CARTIF_TEAMS__TIME_ZONE: invalid ('Mars/Olympus': unknown IANA time zone) — the IANA time zone for "
     "dates and times in notices"),
    ("CARTIF_TEAMS__WEBHOOKS", "https://not-json",
     "CARTIF_TEAMS__WEBHOOKS: invalid (not valid JSON, from env) — workflows (incoming webhook) URLs per "
     "Teams channel, as JSON {\"channel name\": \"https://…\"}"),
    ("CARTIF_AUTH__CLIENTID", CLIENT_ID,
     "CARTIF_AUTH__CLIENTID: unknown setting (known here: client_id, certificate_path, pfx_path, "
     "certificate_passphrase, client_secret)"),
])
def test_invalid_values_are_one_line_naming_the_variable(monkeypatch: pytest.MonkeyPatch, variable: str,
                                                         value: str, expected: str) -> None:
    monkeypatch.setenv(variable, value)
    assert load_error() == expected


@pytest.mark.usefixtures("minimal_env")
def test_missing_certificate_file_names_the_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CARTIF_AUTH__CERTIFICATE_PATH", str(tmp_path / "nope.pem"))
    missing = tmp_path / "nope.pem"
    assert load_error() == (f"CARTIF_AUTH__CERTIFICATE_PATH: invalid (file not found: {missing}) "
                            "— a PEM file holding the app's certificate and its private key")


@pytest.mark.usefixtures("minimal_env")
def test_a_credential_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARTIF_AUTH__CERTIFICATE_PATH")
    assert load_error().startswith("CARTIF_AUTH__CERTIFICATE_PATH: required — a PEM file with the app's "
                                   "certificate and private key (or set CARTIF_AUTH__PFX_PATH, or "
                                   "CARTIF_AUTH__CLIENT_SECRET")
    monkeypatch.setenv("CARTIF_AUTH__CLIENT_SECRET", "graph-only")
    assert Settings.load().auth.client_secret == SecretStr("graph-only")


@pytest.mark.usefixtures("minimal_env")
def test_certificate_and_pfx_together_are_refused(monkeypatch: pytest.MonkeyPatch, pem: Path) -> None:
    monkeypatch.setenv("CARTIF_AUTH__PFX_PATH", str(pem))
    assert load_error().startswith("CARTIF_AUTH__PFX_PATH: conflicts with CARTIF_AUTH__CERTIFICATE_PATH")


@pytest.mark.usefixtures("minimal_env")
def test_notification_url_needs_a_client_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARTIF_NOTIFICATIONS__URL", "https://bot.example.org/notifications")
    assert load_error().startswith("CARTIF_NOTIFICATIONS__CLIENT_STATE: required when "
                                   "CARTIF_NOTIFICATIONS__URL")


# ---------------------------------------------------------------------------------------------- secrets
SECRET = "very-secret-value-0123456789"


@pytest.mark.usefixtures("minimal_env")
def test_secrets_are_masked_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARTIF_AUTH__CLIENT_SECRET", SECRET)
    monkeypatch.setenv("CARTIF_AUTH__CERTIFICATE_PASSPHRASE", SECRET + "-pass")
    monkeypatch.setenv("CARTIF_TEAMS__WEBHOOKS", json.dumps({"Plenary": f"https://h/{SECRET}"}))
    monkeypatch.setenv("CARTIF_NOTIFICATIONS__CLIENT_STATE", SECRET + "-state")
    settings = Settings.load()
    assert SECRET not in str(settings)
    assert SECRET not in repr(settings)
    entries = {f"{e.group}.{e.name}": e for e in settings.entries()}
    for path in ("auth.client_secret", "auth.certificate_passphrase", "notifications.client_state"):
        assert entries[path].value == MASK
        assert entries[path].secret
    assert entries["teams.webhooks"].value == {"Plenary": MASK}
    assert SECRET not in json.dumps([e.value for e in entries.values()])
    assert settings.auth.client_secret is not None
    assert settings.auth.client_secret.get_secret_value() == SECRET


@pytest.mark.usefixtures("minimal_env")
def test_an_invalid_secret_is_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARTIF_NOTIFICATIONS__CLIENT_STATE", SECRET * 10)  # over Graph's 128 characters
    message = load_error()
    assert message.startswith("CARTIF_NOTIFICATIONS__CLIENT_STATE: invalid (")
    assert SECRET not in message


# ---------------------------------------------------------------------------------------------- documentation
def _all_fields() -> Iterator[tuple[str, Any]]:
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for sub, sub_field in annotation.model_fields.items():
                yield f"{name}.{sub}", sub_field
        else:
            yield name, field


@pytest.mark.parametrize(("path", "field"), list(_all_fields()),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_every_setting_is_documented_with_its_default(path: str, field: Any) -> None:
    description = field.description or ""
    assert description.count(".") >= 2, f"{path}: say what it expects, then the default and why"
    assert "Default" in description or "Required" in description, f"{path}: state the default"
