"""The README's first command: the demo starts its own tenant and shows it through the bot's connectors."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import demo


def test_demo_shows_site_library_directory_permissions_and_channels(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.run(data_dir=tmp_path) == 0
    out = capsys.readouterr().out
    assert "site 'CARTIF'" in out
    assert "uploaded Welcome.txt twice → versions 2.0, 1.0" in out
    assert "37 guests, 4 members" in out
    assert "Full Control (1073741829)" in out
    assert "12 channels with Workflows webhooks" in out
