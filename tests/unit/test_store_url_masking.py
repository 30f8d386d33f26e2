"""We test that the store URL's password never appears in ``cartif-bot config show`` (text or JSON)
nor in the one-line error for an invalid store URL, while the rest of the URL stays readable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.cli import main
from config.settings import MASK, mask_url_password
from tests.unit.isolation import isolate_settings

PASSWORD = "pg-pass-0123456789"
URL = f"postgresql+psycopg://cartif:{PASSWORD}@db.example.org:5432/cartif"
BASE_ENV = {"CARTIF_TENANT__ID": "contoso.onmicrosoft.com",
            "CARTIF_AUTH__CLIENT_ID": "3f0c6d2e-1111-2222-3333-444455556666",
            "CARTIF_AUTH__CLIENT_SECRET": "a-client-secret",
            "CARTIF_ENDPOINTS__SITE_URL": "https://contoso.sharepoint.com/sites/CARTIF"}


@pytest.fixture(autouse=True)
def environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_settings(monkeypatch, tmp_path)
    for key, value in BASE_ENV.items():
        monkeypatch.setenv(key, value)


def test_mask_url_password() -> None:
    assert mask_url_password(URL) == f"postgresql+psycopg://cartif:{MASK}@db.example.org:5432/cartif"
    assert mask_url_password("postgresql://cartif:@db/x") == f"postgresql://cartif:{MASK}@db/x"
    # No password, nothing to hide; a path with "@" or ":" after the host is not a password.
    assert mask_url_password("postgresql://cartif@db/x") == "postgresql://cartif@db/x"
    assert mask_url_password("sqlite:///var/a:b@c.sqlite3") == "sqlite:///var/a:b@c.sqlite3"
    assert mask_url_password("https://host:8443/p") == "https://host:8443/p"


@pytest.mark.parametrize("as_json", [False, True])
def test_config_show_masks_the_store_password(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str], as_json: bool) -> None:
    monkeypatch.setenv("CARTIF_STORE__URL", URL)
    assert main(["config", "show", *(["--json"] if as_json else [])]) == 0
    out = capsys.readouterr().out
    assert PASSWORD not in out
    shown = f"postgresql+psycopg://cartif:{MASK}@db.example.org:5432/cartif"
    if as_json:
        data = json.loads(out)
        assert data["settings"]["store"]["url"] == shown
        assert data["sources"]["store.url"] == "env"
    else:
        line = next(line for line in out.splitlines() if line.split()[:1] == ["url"] and "postgresql" in line)
        assert line.split()[1] == shown and line.endswith("(env)")


def test_an_invalid_store_url_error_does_not_print_the_password(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CARTIF_STORE__URL", f"mysql://cartif:{PASSWORD}@db/cartif")
    assert main(["config", "show"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("cartif-bot: settings: CARTIF_STORE__URL: invalid")
    assert PASSWORD not in err and MASK in err
