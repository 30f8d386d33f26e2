"""The README's first command: the demo plays a day of the negotiation on its own tenant and service.

We test the story it must show end to end: the structure built by the service's first cycle, a
manual sync refused without a token and run with the secretariat's Entra ID token, the hand-made
sharing link removed, the Zero Draft picked up and Rev.1 circulated with their symbols and bracket
counts, cards posted only where their audience may read, and a clean SIGTERM exit.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot import demo


@pytest.mark.slow
def test_the_demo_plays_the_whole_day(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.run(data_dir=tmp_path) == 0
    out = capsys.readouterr().out
    assert re.search(r"permissions\s+succeeded\s+drift \d{3}, applied \d{3}", out), out
    assert "without a token → 401" in out
    assert re.search(r"with its token\s+→ 202", out)
    assert "remove_sharing_link Countries/KAZ" in out
    assert re.search(r"circulation\s+succeeded\s+circulated 1", out)
    assert re.search(r"CARTIF/WG-TF/W/1\s+original\s.*\s20\s+1\s+yes", out), out
    assert re.search(r"CARTIF/WG-TF/W/1/Rev\.1\s+revision\s.*\s11\s+3\s+yes", out), out
    posted = dict(re.findall(r"^    (\S[\w -]*?)\s+(\d+) card\(s\)", out, re.MULTILINE))
    # WG-TF's materials reach WG-TF, the Chief Negotiators (Read on every WG folder) and the
    # Secretariat; never the Plenary (all delegations) nor another working group.
    assert set(posted) == {"WG-TF", "Chief Negotiators", "Secretariat"}, posted
    assert "service stopped with SIGTERM → exit 0" in out
