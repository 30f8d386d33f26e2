"""Settings tests on their own: nothing of the developer's machine may leak into them.

A test module imports ``clean_environ`` (an autouse fixture) to isolate every test it holds, or
calls ``isolate_settings`` from a fixture of its own that sets more up afterwards.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import config.settings as settings_module


def isolate_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No CARTIF_* variable, .env or /run/secrets of the developer's machine leaks into a test.

    Every ``CARTIF_*`` variable is removed, the working directory (where a ``.env`` is read) is
    ``tmp_path``, and the default secrets directory is one that does not exist.
    """
    for key in list(os.environ):
        if key.upper().startswith("CARTIF_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(settings_module, "DEFAULT_SECRETS_DIR", tmp_path / "no-such-secrets-dir")


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``isolate_settings`` before every test of a module that imports this fixture."""
    isolate_settings(monkeypatch, tmp_path)
