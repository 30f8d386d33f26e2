"""The notices step: change references in the outbox → routed notices → one card per channel batch.

Where it sits: after a sync cycle commits. ``bot.syncing.Syncer`` writes a change reference per
change (``change_references``) into the outbox IN THE SAME TRANSACTION as the change log and the
delta cursor (``Store.commit_sync(outbox=…)``); ``bot.circulation`` writes ``CirculationEvent``s
with channel ``events`` likewise. ``drain`` (what ``cartif-bot notices send`` and the service cycle
call) then routes, renders and sends. The choice — references at commit time, notices built at
drain time — is deliberate: the commit stays a cheap insert, and routing uses the permission model
in force when the notice is SENT (access removed in between is honoured).

Outbox rows (table ``outbox``; no schema change, the columns are read as follows)::

    channel "changes" / "events"   a SOURCE: one change reference or one circulation event
    channel "teams:NAME"           a NOTICE for Teams channel NAME, key "notice:{source key}:{NAME}"
    status   pending → routed                      (sources)
             pending → sending → sent | pending    (notices; back to pending to retry later)
                               → failed            (parked: N attempts, or a permanent error)
    next_attempt_at  pending: not before this time · sending: when it was claimed · sent: when sent

``drain`` does, in order:

1. **recover** notices left ``sending`` longer than ``lease_seconds`` (a crash, see below);
2. **route** pending sources (``bot.notices.routing``), inserting one notice per channel that may
   hear of it and has a transport, and marking the source ``routed`` — one transaction, keys unique,
   so a crash mid-way re-routes without duplicates. The bot's own writes never get here;
3. **daily digest** (only with ``daily_digest_hour``): once per local day, per channel, a digest
   notice of the change notices it was sent in the last 24 hours (key ``digest:{channel}:{date}``);
4. **send** due notices per channel: a circulated text at once, as its own card; changes after the
   debounce window (``debounce_seconds`` from the oldest one waiting), ALL of the channel's due
   changes as one card ("5 files changed in WG-TF"). Claim (``sending``, attempts+1) → commit →
   post → mark ``sent``. A temporary failure (5xx, 429 after the transport's own retries, no
   connection) puts the notices back to ``pending`` with exponential back-off (``backoff_seconds``
   doubling, capped at ``backoff_max_seconds``; a Retry-After from Teams is the floor), counted per
   notice: after its own ``max_attempts`` a notice is parked ``failed``,
   listed by ``cartif-bot notices list --failed`` and re-queued by ``cartif-bot notices retry``.

**A crash between sending and marking sent.** A Workflows webhook has no idempotency header and no
way to ask whether a run posted, so the drain cannot tell "posted, then crashed" from "crashed
before posting". It commits the claim BEFORE the POST ("mark before send"), so after a crash the
notice is found still ``sending``: with a transport that dedupes by key (``Notifier.idempotent``,
e.g. a Bot Framework transport setting the activity id) it is sent again at once, as the batch it
was in, so under the same key; with Workflows it
is parked as ``failed`` with the reason "interrupted between sending and marking sent", never
re-sent automatically. So a rerun after any crash posts no duplicate, nothing is lost silently,
and the operator decides with ``notices retry`` (the window is the few milliseconds between the
202 and the commit). The idempotency keys keep every re-enqueue, re-route and retry single.

Time comes from an injectable ``clock`` (UTC datetimes): tests simulate a 10-minute outage without
sleeping.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from bot.events import CirculationEvent
from bot.notices.cards import (
    CardInvalid,
    ChangeNotice,
    Links,
    change_card,
    circulation_card,
    digest_card,
    validate_card,
)
from bot.notices.ports import Notifier
from bot.notices.references import CHANGES, change_references
from bot.notices.routing import Router
from bot.store import OutboxMessage, Store, schema
from connectors.errors import ConnectorError, ServerError, Throttled, TransportError

#: A Retry-After from Teams is honoured as the earliest retry, up to this many seconds: a bogus
#: value of days must not silence a channel.
RETRY_AFTER_CAP = 3600.0

__all__ = [
    "CHANGES",
    "EVENTS",
    "NOTICE_PREFIX",
    "Clock",
    "DrainReport",
    "FakeClock",
    "NoticeConfig",
    "change_references",
    "drain",
    "list_notices",
    "retry_notices",
    "utc_clock",
]

log = logging.getLogger(__name__)

#: Outbox channel of domain events (bot.events; the circulation step writes them).
EVENTS = "events"
#: Outbox channel prefix of routed notices: "teams:WG-TF".
NOTICE_PREFIX = "teams:"
#: Most changes one card lists before the rest waits for the next card (a digest shows 25 anyway).
BATCH_MAX = 500

Clock = Callable[[], dt.datetime]


def utc_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class FakeClock:
    """A clock tests move by hand; ``sleep`` advances it instead of waiting (also for the retry layer)."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self.now = start or dt.datetime(2026, 12, 2, 8, 0, tzinfo=dt.UTC)
        self.slept = 0.0

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)

    def monotonic(self) -> float:
        return self.now.timestamp()

    async def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.advance(seconds)


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclasses.dataclass(frozen=True)
class NoticeConfig:
    """How the drain behaves; ``from_settings`` reads TeamsSettings."""

    links: Links
    time_zone: str = "Asia/Manila"
    debounce_seconds: float = 120.0
    max_attempts: int = 8
    backoff_seconds: float = 30.0
    backoff_max_seconds: float = 1800.0
    #: a notice ``sending`` for longer than this was interrupted (a crash): recovered by the next drain
    lease_seconds: float = 900.0
    #: local hour after which each channel gets a digest of the last 24 hours' notices (None: no digest)
    daily_digest_hour: int | None = None

    @classmethod
    def from_settings(cls, settings: Any, library: str = "Shared Documents") -> NoticeConfig:
        teams = settings.teams
        return cls(Links(settings.endpoints.site_url, library), teams.time_zone, teams.debounce_seconds,
                   teams.max_attempts, teams.backoff_seconds, teams.backoff_max_seconds, teams.lease_seconds,
                   teams.daily_digest_hour)

    def backoff(self, attempts: int) -> float:
        return float(min(self.backoff_max_seconds, self.backoff_seconds * 2 ** max(0, attempts - 1)))


@dataclasses.dataclass
class DrainReport:
    """What one drain did."""

    routed: int = 0
    notices: int = 0
    cards: int = 0
    sent: int = 0
    deferred: int = 0
    retrying: int = 0
    parked: int = 0
    recovered: int = 0
    #: the earliest time something waiting becomes due (debounce or back-off), if anything waits
    next_due: dt.datetime | None = None
    errors: list[str] = dataclasses.field(default_factory=list)

    def due(self, when: dt.datetime) -> None:
        self.next_due = when if self.next_due is None else min(self.next_due, when)


def _insert(conn: sa.Connection, channel: str, key: str, payload: Any, now: dt.datetime) -> bool:
    t = schema.outbox
    if conn.execute(sa.select(t.c.id).where(t.c.idempotency_key == key)).first():
        return False
    conn.execute(t.insert().values(created_at=_iso(now), channel=channel, idempotency_key=key,
                                   payload=json.dumps(payload, sort_keys=True), attempts=0, status="pending"))
    return True


def _rows(conn: sa.Connection, query: Any) -> list[OutboxMessage]:
    return [OutboxMessage(r.channel, r.idempotency_key, json.loads(r.payload), r.created_at, r.attempts,
                          r.next_attempt_at, r.status, r.last_error, r.id) for r in conn.execute(query)]


# ---------------------------------------------------------------------------------------------- drain
async def drain(store: Store, notifier: Notifier, router: Router, config: NoticeConfig, *,
                clock: Clock = utc_clock, after_send: Callable[[Sequence[int]], None] | None = None
                ) -> DrainReport:
    """Route pending sources, then send every due notice once (see the module docstring).

    ``after_send`` is called with the notice ids right after a successful POST, before they are
    marked sent: the crash tests raise from it.
    """
    report = DrainReport()
    run = _Run(store, notifier, config, clock, report, after_send)
    for channel, batch in _recover(store, notifier, config, clock(), report):
        await _send(run, channel, batch)
    _route(store, notifier, router, clock(), report)
    if config.daily_digest_hour is not None:
        _daily_digests(store, notifier, config, clock(), report)
    t = schema.outbox
    with store.engine.connect() as conn:
        due = _rows(conn, sa.select(t).where(t.c.status == "pending", t.c.channel.startswith(NOTICE_PREFIX))
                    .order_by(t.c.id))
    now = clock()
    by_channel: dict[str, list[OutboxMessage]] = {}
    for row in due:
        if row.next_attempt_at and _parse(row.next_attempt_at) > now:
            report.due(_parse(row.next_attempt_at))
            report.deferred += 1
            continue
        by_channel.setdefault(row.channel, []).append(row)
    for channel_key, rows in by_channel.items():
        channel = channel_key.removeprefix(NOTICE_PREFIX)
        # Circulated texts and daily digests go at once, each as its own card; changes wait out the window.
        events = [r for r in rows if r.payload.get("type") in ("circulation", "digest")]
        changes = [r for r in rows if r.payload.get("type") == "change"]
        for row in events:
            await _send(run, channel, [row])
        if not changes:
            continue
        oldest = min(_parse(r.created_at) for r in changes)
        ready_at = oldest + dt.timedelta(seconds=config.debounce_seconds)
        if ready_at > clock():
            report.deferred += len(changes)
            report.due(ready_at)
            continue
        for start in range(0, len(changes), BATCH_MAX):
            await _send(run, channel, changes[start:start + BATCH_MAX])
    return report


def _recover(store: Store, notifier: Notifier, config: NoticeConfig, now: dt.datetime,
             report: DrainReport) -> list[tuple[str, list[OutboxMessage]]]:
    """Notices a dead drain left ``sending``: parked, or with a deduplicating transport put back
    and returned as the batches they were sent in (channel, rows) — re-sent as they were, so the
    card carries the same key and the transport can recognise it."""
    t = schema.outbox
    stale = _iso(now - dt.timedelta(seconds=config.lease_seconds))
    batches: dict[tuple[str, str | None, int], list[OutboxMessage]] = {}
    with store.engine.begin() as conn:
        rows = _rows(conn, sa.select(t).where(t.c.status == "sending", t.c.next_attempt_at <= stale).order_by(t.c.id))
        for row in rows:
            if notifier.idempotent:
                values: dict[str, Any] = {"status": "pending", "next_attempt_at": None}
                # One claim stamps a whole batch with one time; events always went alone.
                alone = row.payload.get("type") != "change"
                batches.setdefault((row.channel, row.next_attempt_at, (row.id or 0) if alone else 0), []).append(
                    dataclasses.replace(row, status="pending"))
            else:
                values = {"status": "failed", "last_error": (
                    "interrupted between sending and marking sent (a crash?): it may already be in the channel; "
                    "Workflows webhooks cannot deduplicate, so it is not re-sent automatically — "
                    "`cartif-bot notices retry` sends it again")}
                report.parked += 1
            conn.execute(t.update().where(t.c.id == row.id, t.c.status == "sending").values(**values))
            report.recovered += 1
    return [(channel.removeprefix(NOTICE_PREFIX), batch[start:start + BATCH_MAX])
            for (channel, _, _), batch in batches.items() for start in range(0, len(batch), BATCH_MAX)]


def _route(store: Store, notifier: Notifier, router: Router, now: dt.datetime, report: DrainReport) -> None:
    t = schema.outbox
    reachable = notifier.channels()
    with store.engine.begin() as conn:
        sources = _rows(conn, sa.select(t).where(t.c.status == "pending", t.c.channel.in_([CHANGES, EVENTS]))
                        .order_by(t.c.id))
        for source in sources:
            payload = source.payload
            unreachable: list[str] = []
            notes = _narrowed_notes(router, payload)
            if payload.get("type") == "circulation":
                event = CirculationEvent.from_json(payload)
                for channel in router.channels_for(event.folder):
                    if channel not in reachable:
                        unreachable.append(channel)
                        continue
                    report.notices += _insert(conn, NOTICE_PREFIX + channel,
                                              f"notice:{source.idempotency_key}:{channel}",
                                              {"type": "circulation", "source": source.idempotency_key,
                                               "event": payload}, now)
            elif payload.get("type") == "change":
                for routed in router.route_change(payload["kind"], payload["path"], payload.get("old_path")):
                    if routed.channel not in reachable:
                        unreachable.append(routed.channel)
                        continue
                    notice = {"kind": routed.kind, "path": routed.path, "old_path": routed.old_path,
                              "note": routed.note, "at": payload["at"], "by": payload.get("by"),
                              "modified_at": payload.get("modified_at")}
                    report.notices += _insert(conn, NOTICE_PREFIX + routed.channel,
                                              f"notice:{source.idempotency_key}:{routed.channel}",
                                              {"type": "change", "source": source.idempotency_key,
                                               "notice": notice}, now)
            if unreachable:
                notes.append(f"no transport for: {', '.join(sorted(set(unreachable)))}")
            note = "; ".join(notes) or None
            conn.execute(t.update().where(t.c.id == source.id).values(status="routed", last_error=note,
                                                                     next_attempt_at=_iso(now)))
            report.routed += 1


def _narrowed_notes(router: Router, payload: Any) -> list[str]:
    """Why channels the model would tell were left out: permissions made by hand (``Router.narrowed``)."""
    if payload.get("type") == "circulation":
        paths = [str(payload.get("folder", ""))]
    elif payload.get("type") == "change":
        paths = [p for p in (payload.get("path"), payload.get("old_path")) if p]
    else:
        return []
    notes = []
    for path in paths:
        narrowed = router.narrowed(path)
        if narrowed is not None:
            item, left_out = narrowed
            notes.append(f"not routed to {', '.join(left_out)}: {item!r} has permissions of its own "
                         "(set by hand) they cannot read")
    return notes


def _daily_digests(store: Store, notifier: Notifier, config: NoticeConfig, now: dt.datetime,
                   report: DrainReport) -> None:
    """Once per local day, after ``daily_digest_hour``: per channel, the change notices of the last 24 h.

    The key ``digest:{channel}:{local date}`` makes it once a day whatever the number of drains.
    """
    import zoneinfo

    local = now.astimezone(zoneinfo.ZoneInfo(config.time_zone))
    if config.daily_digest_hour is None or local.hour < config.daily_digest_hour:
        return
    t = schema.outbox
    since = _iso(now - dt.timedelta(days=1))
    with store.engine.begin() as conn:
        for channel in sorted(notifier.channels()):
            key = f"digest:{channel}:{local.date().isoformat()}"
            if conn.execute(sa.select(t.c.id).where(t.c.idempotency_key == key)).first():
                continue
            sent = _rows(conn, sa.select(t).where(t.c.channel == NOTICE_PREFIX + channel, t.c.status == "sent",
                                                  t.c.next_attempt_at >= since).order_by(t.c.id))
            notices = [r.payload["notice"] for r in sent if r.payload.get("type") == "change"]
            if notices:
                report.notices += _insert(conn, NOTICE_PREFIX + channel, key,
                                          {"type": "digest", "day": local.date().isoformat(), "notices": notices},
                                          now)


def _card_for(rows: Sequence[OutboxMessage], channel: str, config: NoticeConfig) -> dict[str, Any]:
    if rows[0].payload.get("type") == "digest":
        listed = [ChangeNotice(**n) for n in rows[0].payload["notices"]]
        count = len({n.path for n in listed})
        return digest_card(listed, channel=channel, links=config.links, time_zone=config.time_zone,
                           heading=f"Daily digest for {channel}: {count} file{'s' if count != 1 else ''} changed "
                                   f"in the 24 hours to {rows[0].payload['day']}")
    if rows[0].payload.get("type") == "circulation":
        event = CirculationEvent.from_json(rows[0].payload["event"])
        return circulation_card(event, links=config.links, time_zone=config.time_zone)
    notices = [ChangeNotice(**r.payload["notice"]) for r in rows]
    if len(notices) == 1:
        return change_card(notices[0], channel=channel, links=config.links, time_zone=config.time_zone)
    return digest_card(notices, channel=channel, links=config.links, time_zone=config.time_zone)


class _Taken(Exception):
    """Another drain claimed some of the batch first: the transaction is rolled back."""


def _temporary(exc: ConnectorError) -> bool:
    return isinstance(exc, ServerError | Throttled | TransportError)


@dataclasses.dataclass
class _Run:
    store: Store
    notifier: Notifier
    config: NoticeConfig
    clock: Clock
    report: DrainReport
    after_send: Callable[[Sequence[int]], None] | None


async def _send(run: _Run, channel: str, rows: Sequence[OutboxMessage]) -> None:
    store, notifier, config, clock, report = run.store, run.notifier, run.config, run.clock, run.report
    t = schema.outbox
    ids = [r.id for r in rows if r.id is not None]
    try:
        card = _card_for(rows, channel, config)
        validate_card(card)
    except (CardInvalid, KeyError, TypeError, ValueError) as exc:
        _finish(store, ids, status="failed", error=f"card not built: {exc}")
        report.parked += len(ids)
        report.errors.append(f"{channel}: card not built: {exc}")
        return
    # Claim before sending, committed: "mark before send" (module docstring). Only rows still
    # pending are claimed; if another drain got any of them first, this batch is left to it.
    try:
        with store.engine.begin() as conn:
            claimed = conn.execute(t.update().where(t.c.id.in_(ids), t.c.status == "pending").values(
                status="sending", attempts=t.c.attempts + 1, next_attempt_at=_iso(clock())))
            if claimed.rowcount != len(ids):
                raise _Taken
    except _Taken:
        return
    key = rows[0].idempotency_key if len(rows) == 1 else f"batch:{rows[0].idempotency_key}+{len(rows) - 1}"
    try:
        await notifier.post(channel, card, key=key)
    except ConnectorError as exc:
        # Per notice: a notice that joined an older one's batch keeps its own attempt count (parking
        # the whole batch on the oldest's count would give up on the newcomer after one try).
        retry_after = getattr(exc, "retry_after", None) or 0.0
        for row in rows:
            if row.id is None:
                continue
            attempts = row.attempts + 1
            if _temporary(exc) and attempts < config.max_attempts:
                # The service's Retry-After is a floor under our own back-off.
                when = clock() + dt.timedelta(seconds=max(config.backoff(attempts), min(retry_after, RETRY_AFTER_CAP)))
                _finish(store, [row.id], status="pending", error=str(exc), next_attempt_at=_iso(when))
                report.retrying += 1
                report.due(when)
            else:
                why = f"after {attempts} attempts: " if _temporary(exc) else ""
                _finish(store, [row.id], status="failed", error=why + str(exc))
                report.parked += 1
        report.errors.append(f"{channel}: {exc}")
        log.warning("notice to %s not delivered (attempt %d): %s", channel, max(r.attempts for r in rows) + 1, exc)
        return
    if run.after_send is not None:
        run.after_send(ids)
    _finish(store, ids, status="sent", error=None, next_attempt_at=_iso(clock()))
    report.cards += 1
    report.sent += len(ids)


def _finish(store: Store, ids: Sequence[int], *, status: str, error: str | None,
            next_attempt_at: str | None = None) -> None:
    t = schema.outbox
    with store.engine.begin() as conn:
        conn.execute(t.update().where(t.c.id.in_(list(ids))).values(status=status, last_error=error,
                                                                    next_attempt_at=next_attempt_at))


# ---------------------------------------------------------------------------------------------- operator
def list_notices(store: Store, *, failed_only: bool = False) -> list[OutboxMessage]:
    """Notices (not sources), oldest first; ``failed_only``: the parked ones."""
    t = schema.outbox
    query = sa.select(t).where(t.c.channel.startswith(NOTICE_PREFIX)).order_by(t.c.id)
    if failed_only:
        query = query.where(t.c.status == "failed")
    with store.engine.connect() as conn:
        return _rows(conn, query)


def withheld_sources(store: Store) -> list[OutboxMessage]:
    """Routed changes and circulations that some channel was not told about, oldest first: their
    ``last_error`` says why (permissions set by hand the channel cannot read, no transport)."""
    t = schema.outbox
    query = (sa.select(t).where(~t.c.channel.startswith(NOTICE_PREFIX), t.c.status == "routed",
                                t.c.last_error.is_not(None)).order_by(t.c.id))
    with store.engine.connect() as conn:
        return _rows(conn, query)


def retry_notices(store: Store, ids: Iterable[int] = ()) -> int:
    """Put parked notices back to pending (all of them when ``ids`` is empty); returns how many."""
    t = schema.outbox
    wanted = list(ids)
    query = t.update().where(t.c.status == "failed", t.c.channel.startswith(NOTICE_PREFIX))
    if wanted:
        query = query.where(t.c.id.in_(wanted))
    with store.engine.begin() as conn:
        result = conn.execute(query.values(status="pending", attempts=0, next_attempt_at=None, last_error=None))
    return int(result.rowcount or 0)
