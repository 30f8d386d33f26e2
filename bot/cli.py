"""``cartif-bot``: the command line. Thin: parse, load settings, call one function, report.

Commands (each one's help ends with an example)::

    cartif-bot config show [--json]        the effective settings, secrets masked, with sources
    cartif-bot emulator serve --port …     run the local Microsoft 365 tenant
    cartif-bot demo                        a scripted walk through the bot against a local tenant
    cartif-bot sync [--json]               one delta sync cycle of the library: what changed
    cartif-bot watch [--poll-only]         sync on change notifications, with a safety-net poll
    cartif-bot changes --since WHEN        the change log since a time
    cartif-bot plan [--json]               folder-permission changes apply would make
    cartif-bot apply [--dry-run] [--force] make folder permissions and groups match the structure
    cartif-bot access report|who PATH      desired vs actual grants; who reaches a folder and why
    cartif-bot audit [--since WHEN]        the audit trail of applied permission changes

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
from config.structure import StructureError
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


def watch(args: argparse.Namespace) -> int:
    """Keep watching the library: one delta cycle per burst of change notifications, plus a poll.

    With CARTIF_NOTIFICATIONS__URL set, it runs the notification receiver (answering Graph's
    validation handshake and acknowledging notifications with 202 at once), keeps a subscription
    on the library root alive (renewed well before expiry, re-created if it vanished), and runs
    ONE incremental sync per burst of notifications. A safety-net poll runs every
    CARTIF_NOTIFICATIONS__POLL_SECONDS (default 15 minutes); without a URL, or with --poll-only,
    polling is all it does. Each cycle prints one line. Stops on Ctrl-C.

    Example:
      CARTIF_NOTIFICATIONS__URL=https://bot.example.org/notifications cartif-bot watch --port 8080
    """
    import asyncio
    from urllib.parse import urlsplit

    from bot.notifications import SyncRequests
    from bot.receiver import Receiver, serve_receiver
    from bot.store import Store

    watching = importlib.import_module("bot.watching")
    settings = Settings.load(env_file=args.env_file)
    url = settings.notifications.url
    secret = settings.notifications.client_state
    poll_only = args.poll_only or not url or secret is None

    def report(cycle: Any) -> None:
        result = cycle.result
        if result is None:
            print(f"watch ({cycle.reason}): failed: {cycle.error}", flush=True)
            return
        counts = ", ".join(f"{n} {kind}" for kind, n in sorted(result.counts().items())) or "no changes"
        absorbed = f", {cycle.notifications} notification(s)" if cycle.notifications else ""
        print(f"watch ({cycle.reason}{absorbed}): {result.mode}, {counts} ({cycle.seconds:.2f} s)", flush=True)
        for change in result.changes:
            print(f"  {change.kind:<8} {change.path}" + (f"  (was {change.old_path})" if change.old_path else ""),
                  flush=True)

    async def run() -> None:
        requests = SyncRequests()
        with Store.open(settings.store.url) as store:
            if poll_only:
                print(f"watch: polling every {settings.notifications.poll_seconds} s (no notifications)", flush=True)
                await watching.watch(settings, store, poll_only=True, requests=requests, on_cycle=report)
                return
            assert url is not None and secret is not None
            parts = urlsplit(url)
            app = Receiver(requests, secret.get_secret_value(), path=parts.path or "/")
            port = args.port if args.port is not None else (parts.port or 8080)
            async with serve_receiver(app, host=args.host, port=port) as bound:
                print(f"watch: receiving notifications on {args.host}:{bound}{app.path} for {url}; "
                      f"safety-net poll every {settings.notifications.poll_seconds} s", flush=True)
                await watching.watch(settings, store, requests=requests, on_cycle=report)

    asyncio.run(run())
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


# ---------------------------------------------------------------------------------------------- permissions
def permissions_plan(args: argparse.Namespace) -> int:
    """Show what `apply` would change to make folder permissions and groups match the structure.

    A table of actions (folder or group, principal, before → after, and the rule behind it);
    nothing is changed. An empty plan means the site matches the structure.

    Example:
      cartif-bot plan --structure config/cartif.yaml --json
    """
    perms = importlib.import_module("bot.permissions")
    settings = Settings.load(env_file=args.env_file)
    with perms.open_session(settings, args.structure) as session:
        the_plan, _ = session.plan()
    sys.stdout.write(perms.dumps(the_plan.as_json()) if args.json else perms.format_plan(the_plan))
    return 0


def permissions_apply(args: argparse.Namespace) -> int:
    """Make folder permissions and groups match the structure: observe, plan, guard, apply, verify.

    The guard refuses an empty structure and a plan that removes more than guard.max_removal_share
    of the existing grants or members unless --force. Every applied change goes to the audit trail.

    Example:
      cartif-bot apply --dry-run
    """
    from bot.store import Store

    perms = importlib.import_module("bot.permissions")
    settings = Settings.load(env_file=args.env_file)
    with perms.open_session(settings, args.structure) as session, Store.open(settings.store.url) as store:
        result = session.apply(store, force=args.force, dry_run=args.dry_run)
    summary = perms.format_cycle(result)
    if args.json:
        sys.stdout.write(perms.dumps(summary))
    else:
        sys.stdout.write(perms.format_plan(result.plan))
        verb = "would apply" if result.dry_run else "applied"
        print(f"cycle {result.cycle_id}: {verb} {len(result.plan) if result.dry_run else summary['applied']} "
              f"action(s), {len(result.failed)} failed, {len(result.remaining)} difference(s) left "
              f"({result.seconds:.1f} s)")
    return 1 if result.failed or (result.remaining and not result.dry_run) else 0


def access_report(args: argparse.Namespace) -> int:
    """Every governed folder with its desired and actual grants (principal and role), and the drift.

    Example:
      cartif-bot access report --csv > access.csv
    """
    perms = importlib.import_module("bot.permissions")
    settings = Settings.load(env_file=args.env_file)
    with perms.open_session(settings, args.structure) as session:
        rows = session.report()
    if args.json:
        sys.stdout.write(perms.dumps(rows))
    elif args.csv:
        sys.stdout.write(perms.format_report_csv(rows))
    else:
        for row in rows:
            mark = "DRIFT " if row["drift"] else "      "
            grants = ", ".join(f"{g['principal']}: {g['role']}" for g in row["actual"]) or "(inherits)"
            print(f"{mark}{row['path']}  {grants}")
            for g in row["missing"]:
                print(f"        missing {g['principal']}: {g['role']}")
            for g in row["extra"]:
                print(f"        extra   {g['principal']}: {g['role']}")
            for link in row["sharing_links"]:
                print(f"        sharing link {link}")
    return 0


def access_who(args: argparse.Namespace) -> int:
    """Who can read or edit PATH (a governed folder, library-relative) and by which rule.

    Example:
      cartif-bot access who "Working groups/WG-TF"
    """
    from bot.errors import UserError

    perms = importlib.import_module("bot.permissions")
    settings = Settings.load(env_file=args.env_file)
    with perms.open_session(settings, args.structure) as session:
        try:
            entries = session.who(args.path)
        except KeyError:
            raise UserError(f"PATH: {args.path!r} is not a governed folder of the structure") from None
    if args.json:
        sys.stdout.write(perms.dumps(entries))
        return 0
    for e in entries:
        print(f"{e['principal']}: {e['role']}  — {e['rule']}")
        for m in e["members"]:
            print(f"    {m['person']}  ({m['rule']})")
    return 0


def audit(args: argparse.Namespace) -> int:
    """List the audit trail of applied permission changes, oldest first.

    Example:
      cartif-bot audit --since 1d --json
    """
    from bot.store import Store

    since = _parse_since(args.since) if args.since else None
    settings = Settings.load(env_file=args.env_file)
    with Store.open(settings.store.url) as store:
        entries = store.audit(since=since, limit=args.limit)
    if args.json:
        json.dump([{"at": e.at, "cycle_id": e.cycle_id, "action": e.action, "target": e.target,
                    "before": e.before, "after": e.after, "rule": e.rule} for e in entries], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for e in entries:
        print(f"{e.at}  {e.cycle_id}  {e.action:<20} {e.target}  {e.before or '-'} → {e.after or '-'}  ({e.rule})")
    if not entries:
        print("no audit entries")
    return 0


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
    watch_parser = _add_command(commands, "watch", watch, "sync on change notifications and a safety-net poll")
    watch_parser.add_argument("--poll-only", action="store_true",
                              help="no subscription or receiver: poll every CARTIF_NOTIFICATIONS__POLL_SECONDS")
    watch_parser.add_argument("--host", default="127.0.0.1",
                              help="address the receiver binds (default: 127.0.0.1, behind a reverse proxy)")
    watch_parser.add_argument("--port", type=int, default=None,
                              help="port the receiver binds (default: the notification URL's port, else 8080)")
    changes_parser = _add_command(commands, "changes", changes, "list the change log since a time")
    changes_parser.add_argument("--since", required=True, metavar="WHEN",
                                help="ISO-8601 date/time (UTC by default) or a duration back: 30m, 12h, 7d")
    changes_parser.add_argument("--json", action="store_true", help="print the changes as a JSON array")
    changes_parser.add_argument("--include-self", action="store_true", help="also list the bot's own writes")
    changes_parser.add_argument("--limit", type=int, default=None, help="at most this many changes")

    structure_help = "the structure YAML (default: the shipped config/cartif.yaml)"
    plan_parser = _add_command(commands, "plan", permissions_plan, "show the permission changes apply would make")
    plan_parser.add_argument("--structure", type=Path, default=None, help=structure_help)
    plan_parser.add_argument("--json", action="store_true", help="print the actions as a JSON array")
    apply_parser = _add_command(commands, "apply", permissions_apply, "make folder permissions match the structure")
    apply_parser.add_argument("--structure", type=Path, default=None, help=structure_help)
    apply_parser.add_argument("--dry-run", action="store_true", help="plan and guard, change nothing")
    apply_parser.add_argument("--force", action="store_true", help="apply even what the guard refuses")
    apply_parser.add_argument("--json", action="store_true", help="print the cycle as JSON")
    access = commands.add_parser("access", help="who can reach what", formatter_class=_Formatter,
                                 description="Access reports on the governed folders.",
                                 epilog="Example:\n  cartif-bot access report --json")
    access_commands = access.add_subparsers(dest="access_command", metavar="COMMAND", required=True)
    report_parser = _add_command(access_commands, "report", access_report, "desired and actual grants per folder")
    report_parser.add_argument("--structure", type=Path, default=None, help=structure_help)
    report_format = report_parser.add_mutually_exclusive_group()
    report_format.add_argument("--json", action="store_true", help="print JSON")
    report_format.add_argument("--csv", action="store_true", help="print a folders × principals CSV matrix")
    who_parser = _add_command(access_commands, "who", access_who, "who can reach a folder, and why")
    who_parser.add_argument("path", metavar="PATH", help="a governed folder, library-relative")
    who_parser.add_argument("--structure", type=Path, default=None, help=structure_help)
    who_parser.add_argument("--json", action="store_true", help="print JSON")
    audit_parser = _add_command(commands, "audit", audit, "list the audit trail of applied changes")
    audit_parser.add_argument("--since", metavar="WHEN", default=None, help="ISO-8601 date/time or 30m, 12h, 7d")
    audit_parser.add_argument("--limit", type=int, default=None, help="at most this many entries")
    audit_parser.add_argument("--json", action="store_true", help="print JSON")

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
    elif isinstance(exc, StructureError):
        kind = "structure"
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
    except (SettingsError, ConnectorError, BotError, StructureError) as exc:
        return handle_cli_error(exc)
    except KeyboardInterrupt:
        return 130
