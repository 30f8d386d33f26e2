"""``python -m emulator --port 0 --data-dir DIR [--reset] [--seed cartif]``: run the local tenant."""

from __future__ import annotations

import argparse
from pathlib import Path

from emulator.server import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m emulator", description="Run the local Microsoft 365 tenant.")
    parser.add_argument("--port", type=int, default=8443, help="TCP port; 0 picks a free one (default 8443)")
    parser.add_argument("--data-dir", type=Path, default=Path(".data/tenant"), help="state, keys, tenant.json")
    parser.add_argument("--reset", action="store_true", help="start from an empty tenant")
    parser.add_argument("--seed", choices=["cartif"], help="seed a scenario (once)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--ru-per-minute", type=int, default=1200, help="resource-unit budget per app per minute")
    args = parser.parse_args(argv)
    serve(args.port, args.data_dir, reset=args.reset, seed=args.seed, host=args.host,
          ru_per_minute=args.ru_per_minute)


if __name__ == "__main__":
    main()
