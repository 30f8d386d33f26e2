"""``cartif-bot``: the command line. Thin: parse, load settings, call one function, report.

Commands (each one's help ends with an example)::

    cartif-bot config show [--json]        the effective settings, secrets masked, with sources
    cartif-bot emulator serve --port …     run the local Microsoft 365 tenant
    cartif-bot demo                        a scripted walk through the bot against a local tenant
    cartif-bot sync [--json]               one delta sync cycle of the library: what changed
    cartif-bot changes --since WHEN        the change log since a time

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


def sync(args: argparse.Namespace) -> int:
    """Run one sync cycle of the library and report what changed since the last one.

    The first run lists the whole library as a baseline (a progress line shows the item count)
    and reports no changes; later runs read only what changed (Graph delta). The bot's own writes
    are recorded but not reported. A run that would delete more than CARTIF_SYNC__MAX_DELETION_SHARE
    of the tracked items stops without recording anything unless --confirm-deletions is given.

    Example:
      CARTIF_TENANT_FILE=.data/tenant/tenant.json cartif-bot sync --json
    """
    import asyncio

    syncing = importlib.import_module("bot.syncing")
    settings = Settings.load(env_file=args.env_file)
    progress = _progress_line if sys.stderr.isatty() and not args.json else None
    result = asyncio.run(syncing.sync_once(settings, confirm_deletions=args.confirm_deletions,
                                           progress=progress))
    if progress is not None:
        sys.stderr.write("\n")
    if args.json:
        json.dump({"cycle_id": result.cycle_id, "drive_id": result.drive_id, "mode": result.mode,
                   "pages": result.pages, "items_seen": result.items_seen, "tracked": result.tracked,
                   "own_writes_ignored": result.own_writes, "seconds": round(result.seconds, 3),
                   "changes": [c.as_json() for c in result.changes]}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(result.counts().items())) or "no changes"
    what = "baseline" if result.mode == "initial" else result.mode
    print(f"sync ({what}): {result.items_seen} items read in {result.pages} page(s), {result.tracked} tracked; "
          f"{counts}" + (f"; {result.own_writes} own write(s) ignored" if result.own_writes else "")
          + f" ({result.seconds:.2f} s)")
    for change in result.changes:
        print(f"  {change.kind:<8} {change.path}" + (f"  (was {change.old_path})" if change.old_path else ""))
    return 0


def changes(args: argparse.Namespace) -> int:
    """List the change log (what syncs found) since WHEN, oldest first.

    WHEN is an ISO-8601 date or time (UTC unless it has an offset), or a duration back from now:
    30m, 12h, 7d.

    Example:
      cartif-bot changes --since 1d --json
    """
    from bot.store import Store

    since = _parse_since(args.since)
    settings = Settings.load(env_file=args.env_file)
    with Store.open(settings.store.url) as store:
        found = store.changes(since=since, include_self=args.include_self, limit=args.limit)
    if args.json:
        json.dump([c.as_json() for c in found], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for change in found:
        tags = ", ".join(f"{k}={v}" for k, v in change.classification.items() if v)
        print(f"{change.at}  {change.kind:<8} {change.path}" + (f"  (was {change.old_path})" if change.old_path
                                                               else "") + (f"  [{tags}]" if tags else ""))
    if not found:
        print(f"no changes since {since}")
    return 0


def _progress_line(pages: int, items: int) -> None:
    sys.stderr.write(f"\rsync: {items} items in {pages} page(s)…")
    sys.stderr.flush()


def _parse_since(text: str) -> str:
    """WHEN → ISO-8601 UTC ("…Z") as the store writes times; UserError names the flag when it cannot."""
    import datetime as dt
    import re

    from bot.errors import UserError

    value = text.strip()
    match = re.fullmatch(r"(\d+)\s*([mhd])", value)
    now = dt.datetime.now(dt.UTC)
    if match:
        unit = {"m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
        when = now - dt.timedelta(**{unit: int(match.group(1))})
    else:
        try:
            when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise UserError(f"--since: {text!r} is neither an ISO-8601 date/time nor a duration like 30m, 12h, "
                            "7d") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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

    sync_parser = _add_command(commands, "sync", sync, "run one sync cycle and report the changes")
    sync_parser.add_argument("--json", action="store_true",
                             help="print JSON: the cycle and every change with id, path, kind, classification")
    sync_parser.add_argument("--confirm-deletions", action="store_true",
                             help="record a mass deletion the guard would stop (CARTIF_SYNC__MAX_DELETION_SHARE)")
    changes_parser = _add_command(commands, "changes", changes, "list the change log since a time")
    changes_parser.add_argument("--since", required=True, metavar="WHEN",
                                help="ISO-8601 date/time (UTC by default) or a duration back: 30m, 12h, 7d")
    changes_parser.add_argument("--json", action="store_true", help="print the changes as a JSON array")
    changes_parser.add_argument("--include-self", action="store_true", help="also list the bot's own writes")
    changes_parser.add_argument("--limit", type=int, default=None, help="at most this many changes")

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
