"""Microsoft-published example bodies (``shared/reference/graph-examples``), for shape checks.

The reference folder lies beside the repository (``../shared``) for developers and CI alike;
conformance tests compare our bodies' keys with these, never whole values (several examples are
marked truncated).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_CANDIDATES = (
    Path(__file__).resolve().parents[2] / "shared" / "reference" / "graph-examples",
    Path("/work/shared/reference/graph-examples"),
)
EXAMPLES = next((p for p in _CANDIDATES if p.is_dir()), _CANDIDATES[0])


def load_example(name: str) -> Any:
    """The example's response body (``name`` with or without ``.json``)."""
    path = EXAMPLES / (name if name.endswith(".json") else f"{name}.json")
    if not path.exists():
        raise FileNotFoundError(f"graph example {path} is missing: the reference folder should lie beside the repo")
    data = json.loads(path.read_text())
    return data.get("body", data) if isinstance(data, dict) and "body" in data else data
