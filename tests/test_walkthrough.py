"""The issue's "done when": a third-party script that knows only tenant.json does every step."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def test_walkthrough_script_passes_every_step(tenant_info: dict[str, Any]) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "walkthrough.py"),
                             str(Path(tenant_info["data_dir"]) / "tenant.json")],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("all steps passed")
    assert result.stdout.count("  ok  ") == 8
