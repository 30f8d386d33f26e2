"""``cartif-bot``: the command line. Thin: parse, load settings, call one function, report.

Commands (each one's help ends with an example)::

    cartif-bot config show [--json]        the effective settings, secrets masked, with sources
    cartif-bot emulator serve --port …     run the local Microsoft 365 tenant
    cartif-bot demo                        a scripted walk through the bot against a local tenant

Errors the operator can fix (settings, authentication, unreachable services, the bot's own
``UserError``) are printed as one line by ``handle_cli_error`` and exit with status 1; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from bot.errors import BotError
from config.settings import Settings, SettingsError
from connectors.errors import ConnectorError

__all__ = ["build_parser", "handle_cli_error", "main"]

PROG = "cartif-bot"
Command = Callable[[argparse.Namespace], int]


# ---------------------------------------------------------------------------------------------- commands
def config_show(args: argparse.Namespace) -> int:
    """Print the effective settings, grouped, secrets masked, each with where it came from.

    Sources: argument, env (CARTIF_* variables), .env, secrets (secrets directory), tenant file
    (CARTIF_TENANT_FILE), derived (computed from another setting) or default.

    Example:
      CARTIF_TENANT_FILE=.data/tenant/tenant.json cartif-bot config show --json
    """
    settings = Settings.load(env_file=args.env_file)
    out: TextIO = sys.stdout
    if args.json:
        json.dump(_as_json(settings), out, indent=2)
        out.write("\n")
    else:
        out.write(_as_text(settings))
    return 0


def emulator_serve(args: argparse.Namespace) -> int:
    """Run the local Microsoft 365 tenant (Entra ID tokens, Graph, SharePoint REST, Teams webhooks).

    It writes DATA_DIR/tenant.json; point the bot at it with CARTIF_TENANT_FILE. Stops on Ctrl-C.

    Example:
      cartif-bot emulator serve --port 8443 --data-dir .data/tenant --seed cartif
    """
    # Imported on use: the bot itself never needs the emulator (nor its dependencies).
    serve = importlib.import_module("emulator.server").serve
    serve(args.port, args.data_dir, reset=args.reset, seed=args.seed, host=args.host,
          ru_per_minute=args.ru_per_minute)
    return 0


def demo(args: argparse.Namespace) -> int:
    """Run the scripted demonstration against a local tenant.

    Example:
      cartif-bot demo
      cartif-bot demo --keep      # leave the local tenant running afterwards
    """
    result = importlib.import_module("bot.demo").run(keep=args.keep)
    return int(result) if isinstance(result, int) else 0


# ---------------------------------------------------------------------------------------------- output
def _as_json(settings: Settings) -> dict[str, Any]:
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for entry in settings.entries():
        if entry.group == "general":
            values[entry.name] = entry.value
            sources[entry.name] = entry.source
        else:
            values.setdefault(entry.group, {})[entry.name] = entry.value
            sources[f"{entry.group}.{entry.name}"] = entry.source
    return {"settings": values, "sources": sources}


def _as_text(settings: Settings) -> str:
    entries = list(settings.entries())
    shown = [_text_value(e.value) for e in entries]
    name_width = max(len(e.name) for e in entries)
    value_width = min(max(len(v) for v in shown), 64)
    lines: list[str] = []
    group = None
    for entry, value in zip(entries, shown, strict=True):
        if entry.group != group:
            group = entry.group
            lines.extend(([""] if lines else []) + [f"[{group}]"])
        lines.append(f"  {entry.name:<{name_width}}  {value:<{value_width}}  ({entry.source})")
        if isinstance(entry.value, dict):  # one line per key (Teams channel → webhook URL)
            lines.extend(f"    {key}: {_text_value(item)}" for key, item in entry.value.items())
    return "\n".join(lines) + "\n"


def _text_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return f"{len(value)} entries" if value else "{}"
    return str(value)


# ---------------------------------------------------------------------------------------------- parser
class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def _add_command(subparsers: Any, name: str, func: Command, help_text: str) -> argparse.ArgumentParser:
    # The docstring is the help; its "Example:" part goes last, after the options (epilog).
    description, _, example = _dedent((func.__doc__ or "").strip()).partition("Example:")
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help_text, description=description.strip(), epilog=f"Example:{example.rstrip()}",
        formatter_class=_Formatter)
    parser.set_defaults(func=func)
    return parser


def _dedent(doc: str) -> str:
    lines = doc.splitlines()
    return "\n".join([lines[0], *(line[4:] if line.startswith("    ") else line for line in lines[1:])])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, formatter_class=_Formatter,
        description="Keeps the CARTIF negotiation's SharePoint workspace right: sync, folder permissions, "
                    "circulated texts, Teams notices.",
        epilog="Example:\n  cartif-bot config show")
    parser.add_argument("--env-file", type=Path, default=Path(".env"),
                        help="dotenv file with CARTIF_* settings (default: .env; a missing file is skipped)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    config = commands.add_parser("config", help="inspect the settings", formatter_class=_Formatter,
                                 description="Inspect the settings.",
                                 epilog="Example:\n  cartif-bot config show")
    config_commands = config.add_subparsers(dest="config_command", metavar="COMMAND", required=True)
    show = _add_command(config_commands, "show", config_show, "print the effective settings")
    show.add_argument("--json", action="store_true", help="print JSON ({settings, sources}) instead of text")

    emulator = commands.add_parser("emulator", help="the local Microsoft 365 tenant",
                                   formatter_class=_Formatter, description="The local Microsoft 365 tenant.",
                                   epilog="Example:\n  cartif-bot emulator serve --seed cartif")
    emulator_commands = emulator.add_subparsers(dest="emulator_command", metavar="COMMAND", required=True)
    serve = _add_command(emulator_commands, "serve", emulator_serve, "run the local tenant")
    serve.add_argument("--port", type=int, default=8443, help="TCP port; 0 picks a free one (default: 8443)")
    serve.add_argument("--data-dir", type=Path, default=Path(".data/tenant"),
                       help="state, keys and tenant.json (default: .data/tenant)")
    serve.add_argument("--reset", action="store_true", help="start from an empty tenant")
    serve.add_argument("--seed", choices=["cartif"], default=None, help="seed a scenario (once per data dir)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    serve.add_argument("--ru-per-minute", type=int, default=1200,
                       help="SharePoint resource units per app per minute before 429 (default: 1200)")

    demo_parser = _add_command(commands, "demo", demo, "run the scripted demonstration")
    demo_parser.add_argument("--keep", action="store_true", help="leave the local tenant running until Ctrl-C")
    return parser


# ---------------------------------------------------------------------------------------------- errors
def handle_cli_error(exc: BaseException, stream: TextIO | None = None) -> int:
    """Print an error the operator can act on as one line and return the exit status (1)."""
    if isinstance(exc, SettingsError):
        kind = "settings"
    elif isinstance(exc, ConnectorError):
        kind = "microsoft 365"
    else:
        kind = "error"
    message = " ".join(str(exc).split())  # one line whatever the message holds
    print(f"{PROG}: {kind}: {message}", file=stream or sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``cartif-bot`` and ``python -m bot``; returns the exit status."""
    args = build_parser().parse_args(argv)
    func: Command = args.func
    try:
        return func(args)
    except (SettingsError, ConnectorError, BotError) as exc:
        return handle_cli_error(exc)
    except KeyboardInterrupt:
        return 130
