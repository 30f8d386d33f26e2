"""Adaptive Cards for notices: valid against the official 1.4 schema, under the size cap, saying what matters.

We test these aspects: every kind of change card validates and carries what, where, by whom,
when (UTC and the local zone) and an Open button; a digest of thousands of long paths is cut
under the budget with "… and N more" and a folder link; a card the schema rejects (a 1.5
property, a wrong element type) raises ``CardInvalid``; the transport body is exactly the
Workflows envelope and a message over 28 KB is refused before sending; 429/503 are retried on
POST by the one retry layer (Retry-After the floor), 500 is not, and errors never show the URL.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import httpx
import pytest

from bot.notices.cards import (
    CARD_BUDGET,
    CardInvalid,
    ChangeNotice,
    Links,
    change_card,
    digest_card,
    message_bytes,
    validate_card,
)
from connectors.errors import NotFound, ServerError, Throttled
from connectors.retrying import PauseGate
from connectors.teams import MessageTooLarge, WorkflowsNotifier, build_workflows_notifier, workflows_body

LINKS = Links("https://contoso.sharepoint.com/sites/CARTIF")


@pytest.mark.parametrize("kind", ["created", "modified", "renamed", "moved", "deleted"])
def test_every_change_card_validates_and_says_what_where_who_when(kind: str) -> None:
    old = "/Working groups/WG-TF/old name.docx" if kind in ("renamed", "moved") else None
    notice = ChangeNotice(kind, "/Working groups/WG-TF/Draft protocol.docx", "2026-12-02T19:40:00Z", old,
                          by="Aigerim Nurlanova")
    card = change_card(notice, channel="WG-TF", links=LINKS, time_zone="Asia/Manila")
    validate_card(card)
    text = json.dumps(card)
    assert card["version"] == "1.4"
    assert "Draft protocol.docx" in text and "/Working groups/WG-TF" in text and "Aigerim Nurlanova" in text
    assert "19:40 UTC" in text and "03:40" in text and "Asia/Manila" in text  # UTC+8
    [action] = card["actions"]
    assert action["type"] == "Action.OpenUrl" and action["url"].startswith(LINKS.site_url)
    if kind == "deleted":
        assert action["title"] == "Open folder" and action["url"].endswith("WG-TF")
    if old:
        assert "old name.docx" in text


def test_a_long_digest_is_cut_under_the_budget_with_a_link_to_the_rest() -> None:
    notices = [ChangeNotice("created", f"/Working groups/WG-TF/Annex {i:04d} " + "x" * 200 + ".docx",
                            "2026-12-02T19:40:00Z", by=f"Person {i % 7}") for i in range(3000)]
    card = digest_card(notices, channel="WG-TF", links=LINKS, time_zone="Asia/Manila", budget=8 * 1024)
    validate_card(card)
    assert message_bytes(card) <= 8 * 1024
    text = json.dumps(card)
    assert "3000 files changed in WG-TF" in text and "more: open the folder" in text
    assert card["actions"][0]["url"].endswith("Working%20groups/WG-TF")
    assert message_bytes(digest_card(notices, channel="WG-TF", links=LINKS, time_zone="UTC")) <= CARD_BUDGET


def test_cards_the_schema_rejects_are_not_sent() -> None:
    card = change_card(ChangeNotice("created", "/a/b.docx", "2026-12-02T19:40:00Z"), channel="X", links=LINKS,
                       time_zone="UTC")
    bad = json.loads(json.dumps(card))
    bad["actions"][0]["mode"] = "primary"  # an Adaptive Card 1.5 property
    with pytest.raises(CardInvalid, match="actions/0"):
        validate_card(bad)
    bad = json.loads(json.dumps(card))
    bad["body"][0]["type"] = "Carousel"
    with pytest.raises(CardInvalid):
        validate_card(bad)
    with pytest.raises(CardInvalid, match="version"):
        validate_card({**card, "version": "1.5"})


async def test_the_transport_sends_the_workflows_envelope_and_refuses_oversize() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, headers={"x-ms-workflow-run-id": "0858"})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    notifier = WorkflowsNotifier({"WG-TF": "https://example.invalid/hook?sig=secret"}, client)
    card = {"type": "AdaptiveCard", "version": "1.4", "body": []}
    delivery = await notifier.post("WG-TF", card, key="k")
    assert delivery.status == 202 and delivery.reference == "0858"
    assert json.loads(seen[0].content) == {"type": "message", "attachments": [
        {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}]}
    huge = {**card, "body": [{"type": "TextBlock", "text": "x" * 29_000}]}
    assert len(workflows_body(huge)) > 28 * 1024
    with pytest.raises(MessageTooLarge):
        await notifier.post("WG-TF", huge, key="k2")
    assert len(seen) == 1, "nothing sent for the oversize message"
    await client.aclose()


async def test_the_transport_retries_through_the_one_retry_layer_and_hides_the_url() -> None:
    script: list[int] = []
    seen: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        status = script.pop(0) if script else 202
        seen.append(status)
        headers = {"retry-after": "2"} if status in (429, 503) else {}
        return httpx.Response(status, headers=headers, json={"error": {"code": "X", "message": "m"}})

    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    http = SimpleNamespace(max_retries=3, retry_delay_seconds=1.0, max_concurrency=4, timeout_seconds=10.0,
                           connect_timeout_seconds=5.0)
    secret_url = "https://example.invalid/workflows/abc/triggers/manual/run?sig=SECRET"
    settings = SimpleNamespace(http=http, endpoints=SimpleNamespace(ca_path=None),
                               teams=SimpleNamespace(webhooks={"WG-TF": secret_url}))
    clock = [0.0]

    async def gate_sleep(seconds: float) -> None:
        clock[0] += seconds

    notifier = build_workflows_notifier(settings, sleep=sleep, gate=PauseGate(clock=lambda: clock[0], sleep=gate_sleep),
                                        transport=httpx.MockTransport(handler))
    card = {"type": "AdaptiveCard", "version": "1.4", "body": []}
    script[:] = [503, 429, 202]  # throttling is retried on POST, Retry-After the floor
    assert (await notifier.post("WG-TF", card, key="a")).status == 202
    assert seen == [503, 429, 202] and slept == [2.0, 2.0]
    seen.clear()
    script[:] = [503, 503, 503, 503]  # the retries run out: the 503 goes up for the outbox to back off
    with pytest.raises(ServerError) as failed:
        await notifier.post("WG-TF", card, key="b")
    assert len(seen) == 4 and failed.value.retry_after == 2.0
    assert "SECRET" not in str(failed.value) and "example.invalid" not in str(failed.value)
    seen.clear()
    script[:] = [500]  # a POST may have been carried out: not retried inside the request
    with pytest.raises(ServerError):
        await notifier.post("WG-TF", card, key="c")
    assert seen == [500]
    seen.clear()
    script[:] = [429, 429, 429, 429]
    with pytest.raises(Throttled):
        await notifier.post("WG-TF", card, key="d")
    script[:] = [404]
    with pytest.raises(NotFound):
        await notifier.post("WG-TF", card, key="e")
    await notifier.aclose()
