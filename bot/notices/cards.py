"""Adaptive Cards for Teams notices: built with a typed builder, validated before anything is sent.

Where it sits: the drain (``bot.notices.outbox``) turns due outbox rows into one card per channel
batch with ``change_card``, ``digest_card`` or ``circulation_card`` and hands it to the
``Notifier``. Pure: no I/O, no clock (times come in the values).

Why these choices:

* **Adaptive Card 1.4**: the highest version Workflows' "Post card in a chat or channel" renders
  reliably; 1.5 and 1.6 cards show "We're sorry, this card couldn't be displayed" although the
  run succeeds (anchors-sync-notify §6, [AM-3920]). The builder is ``adaptive-cards-py``; its
  ``Action`` defaults ``mode`` (a 1.5 property) which the 1.4 schema rejects, so actions here set
  ``mode=None``.
* **Validated against the official 1.4 schema** (vendored as ``schemas/adaptive-card-1.4.json``,
  the file adaptivecards.io publishes, draft-06) with ``jsonschema`` — because a 2xx from a
  Workflows webhook does not prove the card rendered; an invalid card fails silently in Teams.
* **Size**: Workflows accepts about 28 KB per message (the whole request); cards aim for
  ``CARD_BUDGET`` (24 KB, the headroom anchors §5 recommends) and digests drop list lines until
  they fit, ending with "… and N more" and a link to the folder. The transport enforces the hard
  28 KB cap again before sending.
* **Times** are shown in UTC and in the configured local zone (TeamsSettings.time_zone), since
  delegations sit in five time zones and deadlines are set in Manila.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import zoneinfo
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from adaptive_cards import types as ac_types
from adaptive_cards.card import ActionOpenUrl, AdaptiveCard, Container, ElementAnnotated, Fact, FactSet, TextBlock
from jsonschema.exceptions import best_match
from jsonschema.validators import Draft6Validator

from bot.errors import PermanentError
from bot.events import CirculationEvent

__all__ = [
    "CARD_BUDGET",
    "CARD_CONTENT_TYPE",
    "MAX_MESSAGE_BYTES",
    "SCHEMA_PATH",
    "CardInvalid",
    "ChangeNotice",
    "Links",
    "change_card",
    "circulation_card",
    "digest_card",
    "envelope",
    "message_bytes",
    "validate_card",
]

SCHEMA_PATH = Path(__file__).with_name("schemas") / "adaptive-card-1.4.json"
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
#: "Post card in a chat or channel": about 28 KB per message, the whole request [Teams-conn].
MAX_MESSAGE_BYTES = 28 * 1024
#: What cards aim for, leaving headroom under the hard cap (anchors-sync-notify §5).
CARD_BUDGET = 24 * 1024
#: Digest lines shown before "… and N more", even when more would fit: a card is read, not searched.
DIGEST_MAX_LINES = 25

VERBS = {"created": "New", "modified": "Updated", "renamed": "Renamed", "moved": "Moved", "deleted": "Deleted"}
WORDS = {"created": "created", "modified": "updated", "renamed": "renamed", "moved": "moved", "deleted": "deleted"}


class CardInvalid(PermanentError):
    """A card does not validate against the Adaptive Card 1.4 schema (a bug here, never retried)."""


@dataclasses.dataclass(frozen=True, slots=True)
class ChangeNotice:
    """One change as a channel may be told it (routing already removed what it must not see)."""

    kind: str
    path: str
    at: str
    old_path: str | None = None
    note: str | None = None
    by: str | None = None
    #: the item's own modification time when known (else ``at``, when the sync saw it)
    modified_at: str | None = None

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1] or "/"

    @property
    def folder(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[0].lstrip("/") if "/" in self.path.strip("/") else ""


@dataclasses.dataclass(frozen=True, slots=True)
class Links:
    """Web URLs of library items: ``{site_url}/{library}/{path}`` (SharePoint opens files and folders so)."""

    site_url: str
    library: str = "Shared Documents"

    def item(self, path: str) -> str:
        clean = "/".join(p for p in path.split("/") if p)
        return f"{self.site_url.rstrip('/')}/{quote(self.library)}/{quote(clean)}".rstrip("/")


def envelope(card: dict[str, Any]) -> dict[str, Any]:
    """The Workflows webhook body for one card (anchors-sync-notify §5, exactly)."""
    return {"type": "message", "attachments": [{"contentType": CARD_CONTENT_TYPE, "content": card}]}


def message_bytes(card: dict[str, Any]) -> int:
    """Bytes of the request body the transport will send for ``card``."""
    return len(json.dumps(envelope(card), ensure_ascii=False, separators=(",", ":")).encode())


@functools.cache
def _validator() -> Draft6Validator:
    return Draft6Validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))


def validate_card(card: dict[str, Any]) -> None:
    """Raise ``CardInvalid`` unless ``card`` is a valid Adaptive Card 1.4 within the size budget."""
    if card.get("version") != "1.4":
        raise CardInvalid(f"card version {card.get('version')!r}: Workflows renders 1.4 reliably")
    error = best_match(_validator().iter_errors(card))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(card)"
        raise CardInvalid(f"card invalid against the Adaptive Card 1.4 schema at {where}: {error.message[:300]}")
    size = message_bytes(card)
    if size > MAX_MESSAGE_BYTES:
        raise CardInvalid(f"card message is {size} bytes; Workflows accepts {MAX_MESSAGE_BYTES}")


# ---------------------------------------------------------------------------------------------- pieces
def _parse(at: str) -> dt.datetime:
    when = dt.datetime.fromisoformat(at.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def when_text(at: str, time_zone: str) -> str:
    """``2026-12-02 19:40 UTC · 03:40 Thu 3 Dec Asia/Manila``."""
    when = _parse(at).astimezone(dt.UTC)
    local = when.astimezone(zoneinfo.ZoneInfo(time_zone))
    return f"{when:%Y-%m-%d %H:%M} UTC · {local:%H:%M %a %d %b} {time_zone}"


def _text(text: str, **kwargs: Any) -> TextBlock:
    return TextBlock(text=text, wrap=True, **kwargs)


def _title(text: str) -> TextBlock:
    return _text(text, weight=ac_types.FontWeight.BOLDER, size=ac_types.FontSize.MEDIUM)


def _open(title: str, url: str) -> ActionOpenUrl:
    return ActionOpenUrl(title=title, url=url, mode=None)  # mode is 1.5: the 1.4 schema rejects it


def _card(body: Sequence[ElementAnnotated], actions: Sequence[ActionOpenUrl], fallback: str) -> dict[str, Any]:
    builder = AdaptiveCard.new().version("1.4").add_items(list(body))
    if actions:
        builder = builder.add_actions(list(actions))
    card = builder.create()
    card.fallback_text = fallback
    data: dict[str, Any] = json.loads(card.to_json())
    return data


def _escape(text: str) -> str:
    # TextBlock renders a subset of Markdown; file names with * or _ must stay literal.
    return "".join("\\" + c if c in "*_[]`#>" else c for c in text)


# ---------------------------------------------------------------------------------------------- cards
def change_card(notice: ChangeNotice, *, channel: str, links: Links, time_zone: str) -> dict[str, Any]:
    """One change: what, where, by whom, when, and a button to open it (its folder if it is gone)."""
    verb = VERBS.get(notice.kind, notice.kind.title())
    facts = [Fact(title="What", value=f"{WORDS.get(notice.kind, notice.kind)}"
                                      + (f" ({notice.note})" if notice.note else "")),
             Fact(title="Where", value="/" + notice.folder if notice.folder else "/ (library root)")]
    if notice.old_path:
        facts.append(Fact(title="Was", value=notice.old_path))
    facts.append(Fact(title="By", value=notice.by or "unknown"))
    facts.append(Fact(title="When", value=when_text(notice.modified_at or notice.at, time_zone)))
    gone = notice.kind == "deleted" or notice.note == "moved out"
    action = _open("Open folder", links.item(notice.folder)) if gone else _open("Open", links.item(notice.path))
    return _card([_title(f"{verb}: {_escape(notice.name)}"), _text(f"in {channel}", is_subtle=True,
                                                                   spacing=ac_types.Spacing.NONE),
                  FactSet(facts=facts)], [action], f"{verb}: {notice.path}")


def _common_folder(paths: Sequence[str]) -> str:
    split = [[p for p in path.split("/") if p][:-1] for path in paths]
    common: list[str] = []
    for parts in zip(*split, strict=False):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    return "/".join(common)


def digest_card(notices: Sequence[ChangeNotice], *, channel: str, links: Links, time_zone: str,
                budget: int = CARD_BUDGET, heading: str | None = None) -> dict[str, Any]:
    """Several changes to one channel as ONE card ("5 files changed in WG-TF"), cut to fit ``budget``.

    ``heading`` replaces the title (the daily digest says which day it covers).
    """
    ordered = sorted(notices, key=lambda n: (n.at, n.path))
    count = len({n.path for n in ordered})
    folder = _common_folder([n.path for n in ordered])
    first, last = ordered[0].at, ordered[-1].at
    title = heading or f"{count} file{'s' if count != 1 else ''} changed in {channel}"
    span = when_text(first, time_zone) if first[:16] == last[:16] else \
        f"{when_text(first, time_zone)} – {_parse(last):%H:%M} UTC"
    people = sorted({n.by for n in ordered if n.by})

    def build(shown: int) -> dict[str, Any]:
        lines: list[ElementAnnotated] = []
        for n in ordered[:shown]:
            extra = f" (was {n.old_path})" if n.old_path else (f" ({n.note})" if n.note else "")
            lines.append(_text(f"**{VERBS.get(n.kind, n.kind)}** {_escape(n.path)}{_escape(extra)}"
                               + (f" — {_escape(n.by)}" if n.by else ""), spacing=ac_types.Spacing.SMALL))
        if shown < len(ordered):
            lines.append(_text(f"… and {len(ordered) - shown} more: open the folder for the rest",
                               is_subtle=True))
        by = ", ".join(people[:5]) + (f" and {len(people) - 5} more" if len(people) > 5 else "")
        body: list[ElementAnnotated] = [_title(_escape(title)),
                                   _text(span + (f" · by {by}" if by else ""), is_subtle=True,
                                         spacing=ac_types.Spacing.NONE),
                                   Container(items=lines)]
        return _card(body, [_open("Open folder", links.item(folder))], title)

    shown = min(len(ordered), DIGEST_MAX_LINES)
    card = build(shown)
    while shown > 0 and message_bytes(card) > budget:
        # Shrink proportionally, then by one: a few builds at most, even for thousands of lines.
        ratio = budget / message_bytes(card)
        shown = max(0, min(shown - 1, int(shown * ratio)))
        card = build(shown)
    return card


def circulation_card(event: CirculationEvent, *, links: Links, time_zone: str) -> dict[str, Any]:
    """A circulated text: symbol, what it revises, how the brackets moved, the text and its redline."""
    kinds = {"original": "New text", "revision": "Revision", "addendum": "Addendum", "corrigendum": "Corrigendum"}
    facts = [Fact(title="Symbol", value=event.symbol), Fact(title="Title", value=event.title),
             Fact(title="Kind", value=kinds.get(event.kind, event.kind)
                  + (f" of {event.revises}" if event.revises else ""))]
    if event.brackets_previous is None:
        brackets = f"{event.brackets_total} bracketed segment{'s' if event.brackets_total != 1 else ''}"
    else:
        delta = event.brackets_total - event.brackets_previous
        brackets = f"{event.brackets_previous} → {event.brackets_total} ({delta:+d})"
    facts.append(Fact(title="Brackets", value=brackets))
    if event.clean_articles:
        shown = ", ".join(event.clean_articles[:20]) + (" …" if len(event.clean_articles) > 20 else "")
        facts.append(Fact(title="Clean articles", value=shown))
    facts.append(Fact(title="Circulated by", value=event.circulated_by))
    facts.append(Fact(title="When", value=when_text(event.circulated_at, time_zone)))
    actions = [_open("Open the text", event.archive_url or links.item(event.archive_path))]
    if event.redline_url:
        actions.append(_open("Redline", event.redline_url))
    return _card([_title(f"{_escape(event.symbol)} circulated"), FactSet(facts=facts)], actions,
                 f"{event.symbol} circulated: {event.title}")
