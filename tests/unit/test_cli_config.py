"""We test these aspects of the command line (bot.cli):

* ``config show`` prints every setting grouped, with its source, and secrets masked (text and JSON);
* bad settings end with exit status 1 and ONE line on stderr naming the variable, no traceback;
* every command has help that ends with an example; ``python -m bot`` runs the same CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import build_parser, handle_cli_error, main
from config.settings import MASK
from connectors.errors import AuthError
from tests.unit.isolation import clean_environ  # noqa: F401 - an autouse fixture

ROOT = Path(__file__).resolve().parents[2]
SECRET = "do-not-print-me-0123456789"
CLIENT_ID = "3f0c6d2e-1111-2222-3333-444455556666"


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    tenant = {"tenant_id": "e08dd3a9-26ff-4d8f-a803-c96a61f2af74", "client_id": CLIENT_ID,
              "site_url": "https://localhost:40291/sites/CARTIF",
              "authority": "https://localhost:40291/e08dd3a9-26ff-4d8f-a803-c96a61f2af74",
              "teams_webhooks": {"Plenary": f"https://localhost:40291/teams/webhooks/{SECRET}"}}
    (tmp_path / "tenant.json").write_text(json.dumps(tenant))
    monkeypatch.setenv("CARTIF_TENANT_FILE", str(tmp_path / "tenant.json"))
    monkeypatch.setenv("CARTIF_AUTH__CLIENT_SECRET", SECRET)
    (tmp_path / ".env").write_text("CARTIF_SCHEDULE__INTERVAL_SECONDS=90\n")


@pytest.mark.usefixtures("configured")
def test_config_show_groups_settings_masks_secrets_and_names_sources(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert SECRET not in out
    for group in ("[general]", "[tenant]", "[auth]", "[endpoints]", "[http]", "[store]", "[schedule]",
                  "[teams]", "[notifications]"):
        assert group in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ") and line.split()}
    assert lines["client_secret"].split()[1] == MASK
    assert lines["client_secret"].endswith("(env)")
    assert lines["client_id"].endswith("(tenant file)")
    assert lines["interval_seconds"].split()[1] == "90"
    assert lines["interval_seconds"].endswith("(.env)")
    assert lines["graph_url"].split()[1] == "https://graph.microsoft.com/v1.0"
    assert lines["graph_url"].endswith("(default)")
    assert lines["sharepoint_scope"].endswith("(derived)")
    assert f"    Plenary: {MASK}" in out


@pytest.mark.usefixtures("configured")
def test_config_show_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show", "--json"]) == 0
    out = capsys.readouterr().out
    assert SECRET not in out
    data = json.loads(out)
    assert data["settings"]["auth"]["client_secret"] == MASK
    assert data["settings"]["auth"]["certificate_passphrase"] is None  # unset secrets say so
    assert data["settings"]["teams"]["webhooks"] == {"Plenary": MASK}
    assert data["settings"]["endpoints"]["sharepoint_scope"] == "https://localhost:40291/.default"
    assert data["sources"]["auth.client_secret"] == "env"
    assert data["sources"]["tenant.id"] == "tenant file"
    assert data["sources"]["tenant_file"] == "env"


def test_env_file_flag_selects_the_dotenv_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "bot.env").write_text(
        "CARTIF_TENANT__ID=contoso.onmicrosoft.com\n"
        f"CARTIF_AUTH__CLIENT_ID={CLIENT_ID}\nCARTIF_AUTH__CLIENT_SECRET={SECRET}\n"
        "CARTIF_ENDPOINTS__SITE_URL=https://contoso.sharepoint.com/sites/CARTIF\n")
    assert main(["--env-file", str(tmp_path / "bot.env"), "config", "show", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["settings"]["tenant"]["authority"] == "https://login.microsoftonline.com/contoso.onmicrosoft.com"
    assert data["sources"]["auth.client_id"] == ".env"


@pytest.mark.parametrize(("env", "variable"), [
    ({}, "CARTIF_TENANT__ID"),
    ({"CARTIF_TENANT__ID": "contoso.onmicrosoft.com", "CARTIF_AUTH__CLIENT_SECRET": SECRET,
      "CARTIF_ENDPOINTS__SITE_URL": "https://contoso.sharepoint.com/sites/CARTIF"}, "CARTIF_AUTH__CLIENT_ID"),
    ({"CARTIF_TENANT__ID": "contoso.onmicrosoft.com", "CARTIF_AUTH__CLIENT_ID": CLIENT_ID,
      "CARTIF_AUTH__CLIENT_SECRET": SECRET, "CARTIF_ENDPOINTS__SITE_URL": "contoso.sharepoint.com"},
     "CARTIF_ENDPOINTS__SITE_URL"),
])
def test_bad_settings_exit_1_with_one_line(monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str],
                                           env: dict[str, str], variable: str) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(["config", "show"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"cartif-bot: settings: {variable}: ")
    assert "Traceback" not in err
    assert SECRET not in err


def test_connector_errors_are_one_line_too(capsys: pytest.CaptureFixture[str]) -> None:
    error = AuthError("token request for graph refused: unauthorized_client: AADSTS700016:\n"
                      "Application not found", hint="check CARTIF_AUTH__CLIENT_ID")
    status = handle_cli_error(error)
    assert status == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("cartif-bot: microsoft 365: token request for graph refused")
    assert err.rstrip().endswith("— check CARTIF_AUTH__CLIENT_ID")


@pytest.mark.parametrize("command", [[], ["config"], ["config", "show"], ["emulator"], ["emulator", "serve"],
                                     ["demo"]])
def test_every_command_has_help_ending_with_an_example(capsys: pytest.CaptureFixture[str],
                                                       command: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args([*command, "--help"])
    assert info.value.code == 0
    help_text = capsys.readouterr().out.rstrip()
    last_block = help_text.split("\n\n")[-1]
    assert last_block.startswith("Example:")
    assert "cartif-bot" in last_block


def test_python_dash_m_bot_runs_the_cli(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("CARTIF_")}
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run([sys.executable, "-m", "bot", "config", "show"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("cartif-bot: settings: CARTIF_TENANT__ID: required")
