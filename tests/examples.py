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


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", dict: "object", list: "array"}.get(type(value), "null")


def shape_mismatches(ours: Any, theirs: Any, *, path: str = "$", ignore: frozenset[str] = frozenset()) -> list[str]:
    """Where ``ours`` lacks a key of Microsoft's example or holds another JSON type there.

    Objects are compared key by key (recursively); in arrays each example element must be
    matched by the closest of ours (examples mix kinds: a file and a folder, a link and a grant).
    A ``null`` in the example matches anything. ``ignore`` names dotted paths to skip.
    """
    if path in ignore or theirs is None:
        return []
    problems: list[str] = []
    if _kind(ours) != _kind(theirs):
        return [f"{path}: {_kind(ours)} where Microsoft's example has {_kind(theirs)}"]
    if isinstance(theirs, dict):
        for key, value in theirs.items():
            if f"{path}.{key}" in ignore:
                continue
            if key not in ours:
                problems.append(f"{path}.{key}: missing")
            else:
                problems += shape_mismatches(ours[key], value, path=f"{path}.{key}", ignore=ignore)
    elif isinstance(theirs, list) and theirs and ours:
        for element in theirs[:5]:
            problems += min((shape_mismatches(mine, element, path=path, ignore=ignore) for mine in ours), key=len)
    return problems
