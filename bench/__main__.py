"""``python -m bench [NAME] [ARGS…]``: run one benchmark module, or list them.

Benchmarks run against a local tenant they start themselves and report request counts,
resource units, wall time and memory, with a naive baseline run side by side where one exists.
They are measurements, not tests: nothing here asserts a time.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def available() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))


def main(argv: list[str]) -> int:
    names = available()
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m bench NAME [ARGS…]\navailable: " + (", ".join(names) or "none"))
        return 0
    name, rest = argv[0], argv[1:]
    if name not in names:
        print(f"bench: no benchmark named {name!r}; available: {', '.join(names)}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"bench.{name}")
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
