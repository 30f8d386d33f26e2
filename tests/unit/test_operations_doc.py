"""docs/operations.md keeps its settings reference equal to the settings model, and deploy/ exists."""

from __future__ import annotations

from pathlib import Path

from config.reference import OPERATIONS_DOC, render_into, settings_reference
from config.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_the_settings_reference_in_operations_md_is_current() -> None:
    text = OPERATIONS_DOC.read_text(encoding="utf-8")
    assert render_into(text) == text, ("docs/operations.md's settings reference is stale: run "
                                       "`python -m config.reference --write` and commit the result")


def test_the_reference_lists_every_setting_with_its_description() -> None:
    reference = settings_reference()
    for entry in Settings.model_fields:
        assert f"CARTIF_{entry.upper()}" in reference
    for variable in ("CARTIF_SERVICE__API_TOKEN", "CARTIF_SERVICE__REQUIRED_ROLE", "CARTIF_SCHEDULE__CRON",
                     "CARTIF_STORE__URL", "CARTIF_AUTH__CERTIFICATE_PATH"):
        line = next(line for line in reference.splitlines() if f"`{variable}`" in line)
        assert len(line.split("|")[3].strip()) > 20, f"{variable} has no description"
    assert "`CARTIF_SERVICE__API_TOKEN` (secret)" in reference


def test_deploy_runs_as_a_non_root_user() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    user_lines = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER ")]
    assert user_lines and user_lines[-1] not in ("root", "0")
    unit = (ROOT / "deploy" / "cartif-bot.service").read_text()
    assert "User=cartif" in unit and "ExecStart=" in unit and "cartif-bot run" in unit
    assert "KillSignal=SIGTERM" in unit
