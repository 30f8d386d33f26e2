"""``cartif-bot``: the command line. Thin: parse, load settings, call one function, report.

Commands (each one's help ends with an example)::

    cartif-bot config show [--json]        the effective settings, secrets masked, with sources
    cartif-bot emulator serve --port …     run the local Microsoft 365 tenant
    cartif-bot demo                        a scripted walk through the bot against a local tenant
    cartif-bot sync [--json]               one delta sync cycle of the library: what changed
    cartif-bot watch [--poll-only]         sync on change notifications, with a safety-net poll
    cartif-bot run                         the service: scheduled cycles, /api/sync, health, metrics, HA
    cartif-bot sync --remote URL           trigger a running service's cycle and follow it
    cartif-bot changes --since WHEN        the change log since a time
    cartif-bot plan [--json]               folder-permission changes apply would make
    cartif-bot apply [--dry-run] [--force] make folder permissions and groups match the structure
    cartif-bot access report|who PATH      desired vs actual grants; who reaches a folder and why
    cartif-bot audit [--since WHEN]        the audit trail of applied permission changes
    cartif-bot notices send|list|retry     Teams notices: drain the outbox, list, re-queue parked
    cartif-bot circulate PATH --series …   circulate a text: symbol, pinned version, archive, register
    cartif-bot register list|show|diff     the register of circulated texts
    cartif-bot derestrict SYMBOL --by …    record a derestriction

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

    With --remote URL it runs nothing here: it asks a running `cartif-bot run` service to start a
    cycle (POST URL/api/sync with --token, or CARTIF_SERVICE__API_TOKEN) and follows it to the end.

    Example:
      CARTIF_TENANT_FILE=.data/tenant/tenant.json cartif-bot sync --json
      cartif-bot sync --remote https://cartif-bot.example.org --token "$TOKEN"
    """
    import asyncio

    if args.remote:
        return _sync_remote(args)
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


def _sync_remote(args: argparse.Namespace) -> int:
    from bot.errors import UserError
    from bot.service.remote import trigger_remote

    token = args.token
    if not token:
        try:
            api_token = Settings.load(env_file=args.env_file).service.api_token
        except SettingsError:
            api_token = None
        if api_token is None:
            raise UserError("--token: required with --remote (or set CARTIF_SERVICE__API_TOKEN)")
        token = api_token.get_secret_value()

    def progress(run: dict[str, Any]) -> None:
        if not args.json:
            step = f", step {run['current_step']}" if run.get("current_step") else ""
            print(f"run {run['id']}: {run['status']}{step}", flush=True)

    run = trigger_remote(args.remote, token, verify=str(args.ca) if args.ca else True, on_progress=progress)
    if args.json:
        json.dump(run, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for step in run["steps"]:
            counts = ", ".join(f"{k}={v}" for k, v in step["counts"].items())
            print(f"  {step['name']:<12} {step['status']:<10} {counts}" + (f"  {step['error']}" if step["error"]
                                                                         else ""))
    return 0 if run["status"] == "succeeded" else 1


def run_service(args: argparse.Namespace) -> int:
    """Run the bot as a service: scheduled cycles, manual triggers, notifications, health and metrics.

    Each cycle runs sync then permissions (then circulation pick-up and notices) — one cycle at a
    time; a trigger during a cycle queues exactly one follow-up. The HTTP server
    (CARTIF_SERVICE__HOST/PORT) serves POST /api/sync, GET /api/runs[/ID], GET /api/status, /healthz,
    /readyz, /metrics and, with CARTIF_NOTIFICATIONS__URL, Graph change notifications. With a
    PostgreSQL store several replicas may run; only the advisory-lock holder runs cycles. SIGTERM
    finishes the step in flight and exits 0.

    Example:
      CARTIF_SCHEDULE__CRON="*/10 7-19 * * 1-5" CARTIF_SERVICE__PORT=8080 cartif-bot run
    """
    import asyncio

    from bot.service.serving import run_service as serve

    settings = Settings.load(env_file=args.env_file)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if overrides:
        settings = settings.model_copy(update={"service": settings.service.model_copy(update=overrides)})
    return asyncio.run(serve(settings))


def watch(args: argparse.Namespace) -> int:
    """Keep watching the library: one delta cycle per burst of change notifications, plus a poll.

    With CARTIF_NOTIFICATIONS__URL set, it runs the notification receiver (answering Graph's
    validation handshake and acknowledging notifications with 202 at once), keeps a subscription
    on the library root alive (renewed well before expiry, re-created if it vanished), and runs
    ONE incremental sync per burst of notifications. A safety-net poll runs every
    CARTIF_NOTIFICATIONS__POLL_SECONDS (default 15 minutes); without a URL, or with --poll-only,
    polling is all it does. Each cycle prints one line. Stops on Ctrl-C or SIGTERM, deleting its
    subscription on the way out.

    Example:
      CARTIF_NOTIFICATIONS__URL=https://bot.example.org/notifications cartif-bot watch --port 8080
    """
    import asyncio
    import signal
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
        # SIGTERM (docker stop, systemd) stops as cleanly as Ctrl-C: the task is cancelled, and the
        # watch loop deletes its subscription on the way out.
        task = asyncio.current_task()
        if task is not None:
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
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

    try:
        asyncio.run(run())
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("watch: stopped", flush=True)
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


def runs(args: argparse.Namespace) -> int:
    """List the service's recent cycles from the store, newest first: when, why, who asked, outcome,
    and per step its counts or error (what `GET /api/runs` shows, without a running service).

    Example:
      cartif-bot runs --limit 5
    """
    from bot.service.history import RunHistory
    from bot.store import Store

    settings = Settings.load(env_file=args.env_file)
    with Store.open(settings.store.url) as store:
        found = RunHistory(store).recent(args.limit)
    if args.json:
        json.dump([r.as_json() for r in found], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for run in found:
        took = f" in {run.seconds:.1f}s" if run.seconds is not None else ""
        print(f"{run.started_at or run.requested_at}  {run.id}  {run.status}{took}  ({run.reason}, "
              f"by {run.requested_by or 'service'})")
        for step in run.steps:
            counts = ", ".join(f"{k} {v}" for k, v in step.counts.items())
            print(f"    {step.name:<12} {step.status}" + (f": {counts}" if counts else "")
                  + (f" — {step.error}" if step.error else ""))
        if run.error:
            print(f"    error: {run.error}")
    if not found:
        print("no runs recorded yet: `cartif-bot run` records each cycle in the store")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of at least 1")
    return value


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
    for note in the_plan.notes if args.json else ():  # the JSON stays a list of actions; notes go aside
        print(f"note: {note}", file=sys.stderr)
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


# ---------------------------------------------------------------------------------------------- notices
def notices_send(args: argparse.Namespace) -> int:
    """Drain the notices outbox once: route new changes, post due cards to Teams, back off failures.

    Changes wait CARTIF_TEAMS__DEBOUNCE_SECONDS (default 2 minutes) so that a burst becomes one
    card per channel; circulated texts go at once. Routing honours permissions made by hand as the
    service's last permissions step recorded them. Prints one line with what was done.

    Example:
      CARTIF_TENANT_FILE=.data/tenant/tenant.json cartif-bot notices send
    """
    import asyncio

    from bot.notices import drain_once
    from bot.service.history import RunHistory
    from bot.store import Store
    from config.structure import load_structure

    settings = Settings.load(env_file=args.env_file)
    structure = load_structure(args.structure or settings.permissions.structure_path)
    with Store.open(settings.store.url) as store:
        # Permissions made by hand, as the service's last permissions step saw them (run history).
        observed = RunHistory(store).last_observation()
        report = asyncio.run(drain_once(settings, store, structure=structure, observed=observed))
    if args.json:
        json.dump({"routed": report.routed, "notices": report.notices, "cards": report.cards, "sent": report.sent,
                   "deferred": report.deferred, "retrying": report.retrying, "parked": report.parked,
                   "recovered": report.recovered,
                   "next_due": report.next_due.isoformat() if report.next_due else None,
                   "errors": report.errors}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(f"notices: {report.routed} change(s) routed into {report.notices} notice(s); {report.cards} card(s) "
          f"posted for {report.sent} notice(s); {report.deferred} waiting, {report.retrying} to retry, "
          f"{report.parked} parked" + (f"; next due {report.next_due:%H:%M:%S} UTC" if report.next_due else ""))
    for error in report.errors:
        print(f"  {error}")
    return 0


def notices_list(args: argparse.Namespace) -> int:
    """List Teams notices in the outbox: channel, status, attempts, last error; --failed: parked ones;
    --withheld: changes some channel was not told about, and why (e.g. a folder restricted by hand).

    Example:
      cartif-bot notices list --failed --json
    """
    from bot.notices import list_notices, withheld_sources
    from bot.store import Store

    settings = Settings.load(env_file=args.env_file)
    with Store.open(settings.store.url) as store:
        if args.withheld:
            return _print_withheld(withheld_sources(store), as_json=args.json)
        rows = list_notices(store, failed_only=args.failed)
    if args.json:
        json.dump([{"id": r.id, "channel": r.channel.removeprefix("teams:"), "key": r.idempotency_key,
                    "status": r.status, "attempts": r.attempts, "created_at": r.created_at,
                    "next_attempt_at": r.next_attempt_at, "last_error": r.last_error, "payload": r.payload}
                   for r in rows], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for r in rows:
        what = r.payload.get("notice", {}).get("path") or r.payload.get("event", {}).get("symbol", "")
        print(f"{r.id:>6}  {r.status:<8} {r.attempts:>2}x  {r.channel.removeprefix('teams:'):<20} {what}"
              + (f"  — {r.last_error}" if r.last_error else ""))
    if not rows:
        print("no failed notices" if args.failed else "no notices")
    return 0


def _print_withheld(rows: list[Any], *, as_json: bool) -> int:
    if as_json:
        json.dump([{"id": r.id, "key": r.idempotency_key, "created_at": r.created_at, "why": r.last_error,
                    "path": r.payload.get("path") or r.payload.get("folder"), "symbol": r.payload.get("symbol")}
                   for r in rows], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for r in rows:
        what = r.payload.get("symbol") or r.payload.get("path") or r.idempotency_key
        print(f"{r.id:>6}  {r.created_at}  {what}  — {r.last_error}")
    if not rows:
        print("nothing withheld: every change reached every channel it routes to")
    return 0


def notices_retry(args: argparse.Namespace) -> int:
    """Queue parked (failed) notices again, by id, or all of them; the next drain sends them.

    Example:
      cartif-bot notices retry 12 13
    """
    from bot.notices import retry_notices
    from bot.store import Store

    settings = Settings.load(env_file=args.env_file)
    with Store.open(settings.store.url) as store:
        count = retry_notices(store, args.ids)
    print(f"notices: {count} notice(s) queued again")
    return 0


# ---------------------------------------------------------------------------------------------- circulation
def circulate_command(args: argparse.Namespace) -> int:
    """Circulate a text: give it a symbol, pin its version, archive a read-only copy, register it.

    PATH is the library-relative path of a file already on the site (.docx, .pdf or .txt). The
    bot assigns the next symbol of the series (CARTIF/<series>/W/<n>, or …/Rev.k, /Add.k, /Corr.k
    of the text given with --revises, --addendum-to or --corrigendum-to), pins the exact version,
    writes an archive copy named by symbol (Read for whoever can read the source, edits for the
    bot only), a redline beside it when revising, the Symbol/Revision/CirculatedOn/Status columns,
    an item in the "Document register" list, and a register entry with its notice event. The same
    content circulated twice in a series gives the existing entry. With --pickup it circulates
    every new file in the series' "To circulate" folders instead. Bad input changes nothing.

    Example:
      cartif-bot circulate "Working groups/WG-TF/Zero draft.docx" --series WG-TF --title "Zero draft"
      cartif-bot circulate "Working groups/WG-TF/Rev1.docx" --series WG-TF --title "Zero draft, Rev.1" \\
          --revises CARTIF/WG-TF/W/1
      cartif-bot circulate --pickup
    """
    from bot.circulation import CirculationRequest, circulate, pickup
    from bot.errors import UserError
    from bot.events import CirculationKind

    registering = importlib.import_module("bot.registering")
    flags: tuple[tuple[CirculationKind, str | None], ...] = (
        ("revision", args.revises), ("addendum", args.addendum_to), ("corrigendum", args.corrigendum_to))
    kinds = [(k, v) for k, v in flags if v]
    if args.pickup:
        if args.path or args.series or args.title or kinds:
            raise UserError("--pickup takes no PATH, --series, --title or --revises: it reads the drop folders")
    elif not (args.path and args.series and args.title):
        raise UserError("circulate needs PATH, --series and --title (or --pickup)")
    settings = Settings.load(env_file=args.env_file)
    with registering.open_circulation(settings, args.structure) as c:
        if args.pickup:
            outcomes = pickup(structure=c.structure, site=c.site, store=c.store)
            rows = [{"path": o.path, "series": o.series, "error": o.error,
                     "symbol": o.result.entry.symbol if o.result else None,
                     "created": o.result.created if o.result else False} for o in outcomes]
            if args.json:
                json.dump(rows, sys.stdout, indent=2)
                sys.stdout.write("\n")
            for row in [] if args.json else rows:
                state = f"error: {row['error']}" if row["error"] else (
                    "circulated" if row["created"] else "already circulated") + f" as {row['symbol']}"
                print(f"{row['path']}: {state}")
            if not rows and not args.json:
                print("nothing to circulate in the \"To circulate\" folders")
            return 1 if any(r["error"] for r in rows) else 0
        kind: CirculationKind = kinds[0][0] if kinds else "original"
        request = CirculationRequest(args.path, args.series, args.title, kind, kinds[0][1] if kinds else None,
                                     by=args.by)
        result = circulate(request, structure=c.structure, site=c.site, store=c.store)
    if args.json:
        json.dump({"created": result.created, **result.entry.to_json()}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    verb = "circulated" if result.created else "already circulated (same content)"
    print(f"{verb}: {result.entry.symbol}  {result.entry.title}\n  archive {result.entry.archive_url}"
          + (f"\n  redline {result.entry.redline_url}" if result.entry.redline_url else ""))
    return 0


def register_list(args: argparse.Namespace) -> int:
    """List the register of circulated texts: symbol, kind, title, date, brackets, clean articles.

    Example:
      cartif-bot register list --series WG-TF --xlsx register.xlsx
    """
    from bot.store import Store
    from bot.store import register as reg

    registering = importlib.import_module("bot.registering")
    settings = Settings.load(env_file=args.env_file)
    with Store.open(settings.store.url) as store:
        rows = registering.list_rows(reg.entries(store, series=args.series))
    if args.json:
        json.dump(rows, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    elif args.csv:
        sys.stdout.write(registering.list_csv(rows))
    elif args.xlsx:
        registering.write_xlsx(rows, args.xlsx)
        print(f"{len(rows)} text(s) written to {args.xlsx}")
    else:
        sys.stdout.write(registering.format_list(rows))
    return 0


def register_show(args: argparse.Namespace) -> int:
    """Show one circulated text: metadata, pinned version, archive link, brackets per article, changes.

    Example:
      cartif-bot register show CARTIF/WG-TF/W/1/Rev.1
    """
    from bot.store import Store

    registering = importlib.import_module("bot.registering")
    settings = Settings.load(env_file=args.env_file)
    with Store.open(settings.store.url) as store:
        data = registering.show(store, args.symbol)
    if args.json:
        json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(registering.format_show(data))
    return 0


def register_diff(args: argparse.Namespace) -> int:
    """Compare two circulated texts: articles added, removed and changed, and bracket deltas.

    Example:
      cartif-bot register diff CARTIF/WG-TF/W/1 CARTIF/WG-TF/W/1/Rev.2 --html redline.html
    """
    from bot.errors import UserError
    from bot.store import Store

    registering = importlib.import_module("bot.registering")
    settings = Settings.load(env_file=args.env_file)
    with Store.open(settings.store.url) as store:
        data, html = registering.diff(store, args.symbol_a, args.symbol_b)
    if args.html:
        try:
            args.html.write_text(html, encoding="utf-8")
        except OSError as exc:
            raise UserError(f"--html: cannot write {args.html} ({exc.strerror or exc})") from None
    if args.json:
        json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(registering.format_diff(data))
    return 0


def derestrict_command(args: argparse.Namespace) -> int:
    """Record that a circulated text is derestricted (texts are restricted to participants by default).

    The register entry keeps who derestricted it and when; the "Document register" list shows
    Status "Derestricted". File permissions are not widened: publishing is a separate act.

    Example:
      cartif-bot derestrict CARTIF/WG-TF/W/1 --by "Heads of Delegation, 12 May decision"
    """
    registering = importlib.import_module("bot.registering")
    settings = Settings.load(env_file=args.env_file)
    with registering.open_circulation(settings, args.structure) as c:
        entry = registering.derestrict(c.store, c.site, args.symbol, by=args.by)
    print(f"{entry.symbol}: derestricted {entry.derestricted_at} ({entry.derestricted_by})")
    return 0


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
    sync_parser.add_argument("--remote", metavar="URL", default=None,
                             help="trigger a running `cartif-bot run` service at URL and follow the run")
    sync_parser.add_argument("--token", default=None,
                             help="with --remote: the bearer token (API token or Entra ID access token); default: "
                                  "CARTIF_SERVICE__API_TOKEN")
    sync_parser.add_argument("--ca", type=Path, default=None, help="with --remote: a CA bundle to trust for URL")
    run_parser = _add_command(commands, "run", run_service, "run as a service: schedule, API, health, metrics")
    run_parser.add_argument("--host", default=None, help="address to bind (default: CARTIF_SERVICE__HOST)")
    run_parser.add_argument("--port", type=int, default=None, help="port to bind, 0 for a free one "
                                                                   "(default: CARTIF_SERVICE__PORT)")
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

    runs_parser = _add_command(commands, "runs", runs, "list the service's recent cycles")
    runs_parser.add_argument("--limit", type=_positive_int, default=20, help="at most this many runs (default: 20)")
    runs_parser.add_argument("--json", action="store_true", help="print the runs as a JSON array")

    structure_help = "the structure YAML (default: CARTIF_PERMISSIONS__STRUCTURE_PATH, the shipped config/cartif.yaml)"
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

    notices = commands.add_parser("notices", help="Teams notices in the outbox", formatter_class=_Formatter,
                                  description="Teams notices: send, list, retry.",
                                  epilog="Example:\n  cartif-bot notices list --failed")
    notices_commands = notices.add_subparsers(dest="notices_command", metavar="COMMAND", required=True)
    send_parser = _add_command(notices_commands, "send", notices_send, "route and post due notices once")
    send_parser.add_argument("--structure", type=Path, default=None, help=structure_help)
    send_parser.add_argument("--json", action="store_true", help="print the drain report as JSON")
    list_parser = _add_command(notices_commands, "list", notices_list, "list notices and their delivery state")
    list_parser.add_argument("--failed", action="store_true", help="only parked notices")
    list_parser.add_argument("--withheld", action="store_true",
                             help="changes some channel was not told about, and why")
    list_parser.add_argument("--json", action="store_true", help="print JSON")
    retry_parser = _add_command(notices_commands, "retry", notices_retry, "queue parked notices again")
    retry_parser.add_argument("ids", nargs="*", type=int, metavar="ID", help="notice ids (default: all parked)")

    circulate_parser = _add_command(commands, "circulate", circulate_command,
                                    "circulate a text under a symbol, archived and registered")
    circulate_parser.add_argument("path", metavar="PATH", nargs="?", help="library-relative path of the file")
    circulate_parser.add_argument("--series", help="series code: a working group (WG-TF), PLEN, INF, …")
    circulate_parser.add_argument("--title", help="the text's title in the register")
    circulate_kind = circulate_parser.add_mutually_exclusive_group()
    circulate_kind.add_argument("--revises", metavar="SYMBOL", help="a revision of this circulated text (/Rev.k)")
    circulate_kind.add_argument("--addendum-to", metavar="SYMBOL", help="an addendum to this text (/Add.k)")
    circulate_kind.add_argument("--corrigendum-to", metavar="SYMBOL", help="a corrigendum to this text (/Corr.k)")
    circulate_parser.add_argument("--by", default="cartif-bot",
                                  help="who circulates, as the register and the notice show it (default: cartif-bot)")
    circulate_parser.add_argument("--pickup", action="store_true",
                                  help="circulate the new files of every series' \"To circulate\" folder")
    circulate_parser.add_argument("--structure", type=Path, default=None, help=structure_help)
    circulate_parser.add_argument("--json", action="store_true", help="print the register entry as JSON")
    register = commands.add_parser("register", help="the register of circulated texts", formatter_class=_Formatter,
                                   description="The register of circulated texts.",
                                   epilog="Example:\n  cartif-bot register list")
    register_commands = register.add_subparsers(dest="register_command", metavar="COMMAND", required=True)
    rlist = _add_command(register_commands, "list", register_list, "list the circulated texts")
    rlist.add_argument("--series", default=None, help="only this series")
    rlist_format = rlist.add_mutually_exclusive_group()
    rlist_format.add_argument("--json", action="store_true", help="print JSON")
    rlist_format.add_argument("--csv", action="store_true", help="print CSV")
    rlist_format.add_argument("--xlsx", type=Path, metavar="FILE", help="write an Excel workbook")
    rshow = _add_command(register_commands, "show", register_show, "show one circulated text")
    rshow.add_argument("symbol", metavar="SYMBOL", help="e.g. CARTIF/WG-TF/W/1/Rev.1")
    rshow.add_argument("--json", action="store_true", help="print JSON")
    rdiff = _add_command(register_commands, "diff", register_diff, "compare two circulated texts")
    rdiff.add_argument("symbol_a", metavar="SYMBOL_A", help="the older text")
    rdiff.add_argument("symbol_b", metavar="SYMBOL_B", help="the newer text")
    rdiff.add_argument("--html", type=Path, metavar="FILE", help="write the HTML redline to FILE")
    rdiff.add_argument("--json", action="store_true", help="print JSON")
    derestrict_parser = _add_command(commands, "derestrict", derestrict_command,
                                     "record that a circulated text is derestricted")
    derestrict_parser.add_argument("symbol", metavar="SYMBOL", help="the circulated text")
    derestrict_parser.add_argument("--by", required=True, help="who decided (a person or a decision)")
    derestrict_parser.add_argument("--structure", type=Path, default=None, help=structure_help)

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
