"""The Teams surface of the local tenant: Workflows webhooks per channel and pages to read them.

What a bot in 2026 can post to a Teams channel from a daemon is a Power Automate *Workflows*
webhook ("Post to a channel when a webhook request is received"; anchors-sync-notify.md §5):
a secret URL per channel. Like the real trigger, ``POST /teams/webhooks/{id}`` answers **202 to
every POST** with an empty body and only then "runs the flow" (``tenant.spawn``): the template
loops over ``attachments`` ("Send each adaptive card") and posts each card with "Post card in a
chat or channel". So a 202 proves nothing (§3: "an invalid or too-new card still shows the run as
succeeded"); what happened is recorded per message with status ``posted`` or ``failed`` and the
reason, readable at ``GET /teams/api/{channel}/messages``, ``GET /_admin/teams/{channel}`` and as
HTML at ``GET /teams`` and ``GET /teams/{channel}``.

What the run checks (``evaluate``), in the order the flow meets them:
  * the whole request at most 28 KB (28 × 1024 bytes): "Post card" fails with "Request Entity too
    large" (§3, [Teams-conn]);
  * ``attachments`` an array: otherwise the foreach fails with Logic Apps' ExpressionEvaluationFailed
    text, verbatim from user reports ([bgp-203]; non-JSON bodies land here too, their
    ``attachments`` evaluates to null);
  * ``type`` ``message``, each attachment ``application/vnd.microsoft.card.adaptive`` with a
    ``content`` object (the envelope of §5);
  * ``content.type`` exactly ``AdaptiveCard`` ("Property 'type' must be 'AdaptiveCard'", [ffind-4]);
  * ``version`` present and at most 1.4: Workflows renders 1.4 reliably, newer cards show "We're
    sorry, this card couldn't be displayed" although the run succeeds (§6, [AM-3920]);
  * ``body``, when present, an array of elements.

Each card of a valid envelope becomes one channel message (the foreach posts them one by one).

The channel page renders each posted card the way Teams does, with Microsoft's own renderer (npm
``adaptivecards``, installed into ``emulator/web`` by ``./run`` and served from there at
``/teams/static/adaptivecards.min.js``: no CDN, the page works offline); the card JSON stays one
click away under each card. Without the renderer installed the page shows the JSON only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import html
import json
import re
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from emulator.http import Ctx, HttpError, Resp, Router, json_resp

if TYPE_CHECKING:
    from emulator.app import Tenant

MAX_BYTES = 28 * 1024  # "Post card in a chat or channel": about 28 KB per message [Teams-conn]
MAX_CARD_VERSION = (1, 4)  # what Workflows renders reliably [AM-3920]
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
#: How long a flow run takes before its outcome is recorded (real runs take seconds).
RUN_DELAY = 0.05
_FOREACH = ("Action 'Send_each_adaptive_card' failed: The execution of template action "
            "'Send_each_adaptive_card' failed: the result of the evaluation of 'foreach' expression "
            "'@triggerOutputs()?['body']?['attachments']' is of type '{kind}'. "
            "The result must be a valid array.")
_UNDISPLAYABLE = "We're sorry, this card couldn't be displayed"
#: Microsoft's Adaptive Cards renderer, installed by ``./run`` (npm ci in emulator/web; see package.json).
RENDERER = Path(__file__).with_name("web") / "node_modules" / "adaptivecards" / "dist" / "adaptivecards.min.js"


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One channel message as the flow run leaves it: what is stored, its status and why."""

    body: str
    status: str  # posted | failed
    reason: str | None = None


def _json_kind(value: Any) -> str:
    """The type name Logic Apps' expression language reports for a JSON value."""
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        return "Integer"
    if isinstance(value, float):
        return "Float"
    if isinstance(value, str):
        return "String"
    return "Array" if isinstance(value, list) else "Object"


def _card_problem(attachment: Any) -> str | None:
    """Why "Post card" would not show this attachment as a card, or None if it would."""
    if not isinstance(attachment, dict):
        return f"Each attachment must be an object, not {_json_kind(attachment)}."
    content_type = attachment.get("contentType")
    if content_type != CARD_CONTENT_TYPE:
        return f"The attachment's contentType must be '{CARD_CONTENT_TYPE}', not {content_type!r}."
    card = attachment.get("content")
    if not isinstance(card, dict):
        return (f"The attachment's 'content' must be an Adaptive Card object, not {_json_kind(card)} "
                f"(the 'Post card in a chat or channel' action needs the card JSON).")
    if card.get("type") != "AdaptiveCard":
        return f"Property 'type' must be 'AdaptiveCard' (found {card.get('type')!r})."
    version = card.get("version")
    if version is None:
        return f"{_UNDISPLAYABLE}: the card has no 'version' (Workflows renders Adaptive Cards up to 1.4)."
    text = str(version).strip() if isinstance(version, str | int | float) else ""
    match = re.fullmatch(r"(\d+)\.(\d+)", text)
    if match is None:
        return f"{_UNDISPLAYABLE}: the card's version {version!r} is not a version such as \"1.4\"."
    if (int(match.group(1)), int(match.group(2))) > MAX_CARD_VERSION:
        return (f"{_UNDISPLAYABLE}: Adaptive Card version {version} is newer than the 1.4 that 'Post card "
                f"in a chat or channel' renders (the flow run itself succeeded).")
    if "body" in card and not isinstance(card["body"], list):
        return (f"{_UNDISPLAYABLE}: the card's 'body' must be an array of elements, "
                f"not {_json_kind(card['body'])}.")
    if isinstance(card.get("body"), list) and not all(isinstance(e, dict) and isinstance(e.get("type"), str)
                                                      for e in card["body"]):
        return f"{_UNDISPLAYABLE}: every element of the card's 'body' must be an object with a 'type'."
    return None


def evaluate(raw: bytes) -> list[Outcome]:
    """Run the "Post to a channel when a webhook request is received" flow on a request body."""
    text = raw.decode("utf-8", errors="replace")
    if len(raw) > MAX_BYTES:
        return [Outcome(text, "failed", f"Request Entity too large: the message is {len(raw)} bytes; 'Post "
                                        f"card in a chat or channel' accepts about 28 KB ({MAX_BYTES}).")]
    try:
        payload = json.loads(raw) if raw.strip() else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        return [Outcome(text, "failed", "ExpressionEvaluationFailed. " + _FOREACH.format(kind="Null")
                        + " (The request body is not JSON.)")]
    attachments = payload.get("attachments") if isinstance(payload, dict) else None
    if not isinstance(attachments, list):
        return [Outcome(text, "failed", "ExpressionEvaluationFailed. " + _FOREACH.format(
            kind=_json_kind(attachments)))]
    assert isinstance(payload, dict)
    if payload.get("type") != "message":
        return [Outcome(text, "failed",
                        f"The payload's 'type' must be 'message', not {payload.get('type')!r}.")]
    if not attachments:
        return [Outcome(text, "failed", "The flow ran but posted nothing: 'attachments' is an empty array.")]
    outcomes = []
    for attachment in attachments:
        # Store each card in its own envelope: one channel message per card, renderable on its own.
        body = json.dumps({"type": "message", "attachments": [attachment]}, ensure_ascii=False) \
            if len(attachments) > 1 else text
        problem = _card_problem(attachment)
        outcomes.append(Outcome(body, "failed" if problem else "posted", problem))
    return outcomes


async def _run_flow(tenant: Tenant, channel: str, raw: bytes) -> None:
    await asyncio.sleep(RUN_DELAY)
    for outcome in evaluate(raw):
        tenant.state.add_teams_message(channel, outcome.body, outcome.status, outcome.reason)


def _run_id() -> str:
    """A Logic Apps-shaped run id (``08584…CU…``), returned as ``x-ms-workflow-run-id``."""
    digits = f"{secrets.randbelow(10**15):015d}{secrets.randbelow(10**6):06d}"
    return f"08584{digits}CU{secrets.randbelow(100):02d}"


async def webhook(ctx: Ctx) -> Resp:
    channel = ctx.state.channel_by_webhook(ctx.params["webhook_id"])
    if channel is None:
        # The URL is the secret: an unknown one finds no workflow.
        raise HttpError(404, "WorkflowNotFound",
                        f"The workflow '{ctx.params['webhook_id']}' could not be found.")
    run_id = _run_id()
    ctx.tenant.spawn(_run_flow(ctx.tenant, channel["name"], ctx.req.body))
    return Resp(202, b"", [("x-ms-workflow-run-id", run_id), ("x-ms-correlation-id", secrets.token_hex(16))])


def _channel(ctx: Ctx) -> dict[str, Any] | None:
    name = ctx.params["channel"]
    return next((c for c in ctx.state.channels() if c["name"].lower() == name.lower()), None)


def message_view(row: dict[str, Any]) -> dict[str, Any]:
    """A recorded message for the JSON APIs: the stored body parsed where it is JSON, and its card."""
    try:
        payload: Any = json.loads(row["body"])
    except json.JSONDecodeError:
        payload = None
    card = None
    if isinstance(payload, dict) and isinstance(payload.get("attachments"), list) and payload["attachments"]:
        first = payload["attachments"][0]
        card = first.get("content") if isinstance(first, dict) else None
    return {"id": row["id"], "channel": row["channel"], "receivedDateTime": row["received_at"],
            "size": row["size"], "status": row["status"], "reason": row["reason"],
            "payload": payload, "card": card, "raw": None if payload is not None else row["body"]}


async def api_messages(ctx: Ctx) -> Resp:
    channel = _channel(ctx)
    if channel is None:
        raise HttpError(404, "ChannelNotFound", f"There is no channel '{ctx.params['channel']}'.")
    return json_resp([message_view(m) for m in ctx.state.teams_messages(channel["name"])],
                     content_type="application/json; charset=utf-8")


# ---------------------------------------------------------------------------- HTML pages

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#f5f5f7;color:#242424}
header{background:#464775;color:#fff;padding:14px 28px}header a{color:#fff;text-decoration:none}
h1{font-size:20px;margin:0}main{max-width:980px;margin:24px auto;padding:0 20px}
table{width:100%;border-collapse:collapse;background:#fff;border-radius:8px;overflow:hidden;
box-shadow:0 1px 3px rgba(0,0,0,.08)}th,td{text-align:left;padding:10px 14px;border-bottom:1px solid #eee}
th{background:#fafafa;font-weight:600;font-size:13px;color:#616161}td.n{text-align:right;font-variant-numeric:tabular-nums}
.msg{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.08);margin:0 0 16px;padding:14px 18px}
.meta{font-size:13px;color:#616161;display:flex;gap:14px;align-items:center;flex-wrap:wrap}
.badge{border-radius:10px;padding:1px 9px;font-size:12px;font-weight:600}
.posted{background:#dff6dd;color:#107c10}.failed{background:#fde7e9;color:#a4262c}
.reason{margin:8px 0 0;color:#a4262c;font-size:14px}
pre{background:#f7f7f9;border:1px solid #eee;border-radius:6px;padding:10px;overflow:auto;font-size:12.5px;
max-height:420px;margin:10px 0 0}.empty{color:#616161;font-style:italic}code{font-size:13px}
.card-host{margin:12px 0 0;max-width:560px;border:1px solid #e1dfdd;border-radius:6px;overflow:hidden}
details{margin:8px 0 0;font-size:13px;color:#616161}
/* the renderer's FactSet is a table: keep the page's table style off it */
.card-host table{width:auto;box-shadow:none;border-radius:0;background:none}
.card-host td,.card-host th{border-bottom:none;padding:0 12px 2px 0}
.ac-pushButton{background:#fff;border:1px solid #d1d1d1;border-radius:4px;padding:5px 14px;
font:600 14px 'Segoe UI',system-ui,sans-serif;color:#242424;cursor:pointer}
"""


#: Renders every ``.card-host`` with the official renderer; a minimal Markdown (bold, escapes) as Teams does.
_RENDER_SCRIPT = """
<script src="/teams/static/adaptivecards.min.js"></script>
<script>
(function () {
  if (!window.AdaptiveCards) { return; }
  function esc(t) { return t.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;"); }
  AdaptiveCards.AdaptiveCard.onProcessMarkdown = function (text, result) {
    var html = esc(text).replace(/\\*\\*(.+?)\\*\\*/g, "<strong>$1</strong>").replace(/\\\\(.)/g, "$1");
    result.outputHtml = html; result.didProcess = true;
  };
  var hostConfig = new AdaptiveCards.HostConfig({fontFamily: "'Segoe UI', system-ui, sans-serif"});
  document.querySelectorAll(".card-host").forEach(function (el) {
    try {
      var card = new AdaptiveCards.AdaptiveCard();
      card.hostConfig = hostConfig;
      card.parse(JSON.parse(el.getAttribute("data-card")));
      var rendered = card.render();
      if (rendered) { el.appendChild(rendered); }
    } catch (e) { el.textContent = "We're sorry, this card couldn't be displayed"; }
  });
})();
</script>
"""


def _page(title: str, body: str, *, status: int = 200) -> Resp:
    doc = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
           f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{_CSS}</style></head>'
           f'<body><header><h1><a href="/teams">Teams</a> · {html.escape(title)}</h1></header>'
           f"<main>{body}</main></body></html>")
    return Resp(status, doc.encode(), [("content-type", "text/html; charset=utf-8")])


async def index_page(ctx: Ctx) -> Resp:
    counts = ctx.state.teams_message_counts()
    rows = []
    for c in ctx.state.channels():
        n = counts.get(c["name"], {})
        link = f'/teams/{quote(c["name"], safe="")}'
        rows.append(f'<tr><td><a href="{html.escape(link)}">{html.escape(c["display_name"])}</a>'
                    f'<br><code>{html.escape(c["name"])}</code></td><td class="n">{n.get("posted", 0)}</td>'
                    f'<td class="n">{n.get("failed", 0)}</td></tr>')
    table = ('<table><thead><tr><th>Channel</th><th style="text-align:right">Posted</th>'
             '<th style="text-align:right">Failed</th></tr></thead><tbody>'
             + ("".join(rows) or '<tr><td colspan="3" class="empty">No channels.</td></tr>')
             + "</tbody></table>")
    return _page("Channels", table)


async def channel_page(ctx: Ctx) -> Resp:
    channel = _channel(ctx)
    if channel is None:
        missing = html.escape(ctx.params["channel"])
        return _page("Not found", f'<p class="empty">There is no channel “{missing}”.</p>', status=404)
    parts = []
    for m in reversed(ctx.state.teams_messages(channel["name"])):  # newest first, as a channel reads
        view = message_view(m)
        shown = view["card"] if view["card"] is not None else (view["payload"] if view["payload"] is not None
                                                               else view["raw"])
        text = shown if isinstance(shown, str) else json.dumps(shown, indent=2, ensure_ascii=False)
        if len(text) > 40_000:
            text = text[:40_000] + "\n… (truncated)"
        reason = f'<p class="reason">{html.escape(m["reason"])}</p>' if m["reason"] else ""
        rendered = ""
        if view["card"] is not None and m["status"] == "posted" and RENDERER.is_file():
            data = html.escape(json.dumps(view["card"], ensure_ascii=False), quote=True)
            rendered = f'<div class="card-host" data-card="{data}"></div>'
        source = (f"<details><summary>card JSON</summary><pre>{html.escape(text)}</pre></details>" if rendered
                  else f"<pre>{html.escape(text)}</pre>")
        parts.append(f'<article class="msg"><div class="meta"><span class="badge {html.escape(m["status"])}">'
                     f'{html.escape(m["status"])}</span><span>#{m["id"]}</span>'
                     f'<span>{html.escape(m["received_at"])}</span><span>{m["size"]} bytes</span></div>'
                     f"{reason}{rendered}{source}</article>")
    body = "".join(parts) or '<p class="empty">No messages yet.</p>'
    return _page(channel["display_name"], body + (_RENDER_SCRIPT if RENDERER.is_file() else ""))


async def renderer(ctx: Ctx) -> Resp:
    if not RENDERER.is_file():
        raise HttpError(404, "RendererNotInstalled", "The Adaptive Cards renderer is not installed: run ./run "
                        "(it runs npm ci in emulator/web).")
    return Resp(200, RENDERER.read_bytes(), [("content-type", "application/javascript; charset=utf-8"),
                                              ("cache-control", "max-age=3600")])


def register(router: Router) -> None:
    router.add("POST", r"/teams/webhooks/(?P<webhook_id>[^/]+)", webhook, name="teams.webhook",
               surface="teams")
    router.add("GET", r"/teams/static/adaptivecards\.min\.js", renderer, name="teams.renderer", surface="teams")
    router.add("GET", r"/teams/?", index_page, name="teams.index", surface="teams")
    router.add("GET", r"/teams/api/(?P<channel>[^/]+)/messages", api_messages, name="teams.api.messages",
               surface="teams")
    router.add("GET", r"/teams/(?P<channel>[^/]+)", channel_page, name="teams.channel", surface="teams")

