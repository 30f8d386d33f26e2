"""Circulation on the local tenant through the real SDKs: symbols, archive copies, redline, register.

We test these aspects:

* a bracketed draft and then its revision circulate as …/W/1 and …/W/1/Rev.1: two register
  entries, two archive copies named by symbol, a redline beside the second, bracket counts per
  article equal to a hand count, the exact SharePoint version pinned, one CirculationEvent per
  entry in the outbox, the list-item columns on source and archive, an item per text in the
  "Document register" list;
* the archive copy is read-only to delegates: its role assignments (as SharePoint REST reports
  them) give Read to the principals that could read the source and Full Control to the bot alone;
* circulating the same content again changes nothing;
* each bad input (unknown series, missing file, a file that is not what its extension says, a
  corrupt or password-protected .docx, a --revises symbol that does not exist) leaves the store
  and the site as they were;
* files dropped in a series' "To circulate" folder are picked up once.

The tenant is shared with other tests: everything lives under the test's own root folder, its
groups carry the test's unique prefix and its register list the test's own title.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

from bot.applying import reconcile
from bot.circulation import CirculationRequest, circulate, pickup
from bot.desired import build_desired
from bot.errors import UserError
from bot.planning import GuardPolicy
from bot.ports import MemoryAuditLog
from bot.store import Store
from bot.store import register as reg
from config.settings import Settings
from config.structure import Structure
from connectors.circulation import SiteCirculation, build_site_circulation
from tests.sites import DELEGATIONS, own_structure, permission_site

STRUCTURE = DELEGATIONS + """working_groups:
  - {code: WG-TF, name: Trade facilitation, members: all, chair: KAZ}
roster:
  - {person: aigerim.nurlanova@mti.gov.kz, country: KAZ, roles: [chief_negotiator], working_groups: [WG-TF]}
  - {person: madina.abenova@mti.gov.kz, country: KAZ, roles: [delegate], working_groups: [WG-TF]}
  - {person: aibek.sydykov@mineconom.gov.kg, country: KGZ, roles: [chief_negotiator]}
  - {person: maria.santos@cartif.onmicrosoft.com, secretariat: true, roles: [secretariat]}
folders:
  owner: secretariat
  templates:
    - path: Plenary
      grants: {all_participants: Read, chief_negotiators: Edit}
    - path: Negotiating texts
      grants: {all_participants: Read}
    - path: Negotiating texts/Archive
      inherit: true
    - path: Working groups
      grants: {all_participants: Read}
    - path: "Working groups/{wg}"
      for_each: working_group
      grants: {"wg:{wg}": Contribute, "country:{chair}": Edit}
    - path: "Working groups/{wg}/To circulate"
      for_each: working_group
      grants: {}
    - path: Plenary/To circulate
      grants: {}
"""

DRAFT = """Draft CARTIF Agreement on Trade Facilitation
The Parties, [recognizing] the importance of transit,

Article 1: Scope
1. This Agreement applies to [goods in transit] [all goods].
2. [KAZ: Each Party shall publish] its rules.

Article 2: Transparency
1. Each Party shall publish its laws promptly.

Article 3: Fees
1. Fees shall not exceed [X] per cent [[of the value] of the goods].
"""
#: Counted by hand: [recognizing] | [goods in transit], [all goods], [KAZ: …] | none |
#: [X], [[of the value] of the goods], [of the value].
DRAFT_COUNTS = {"Preamble": 1, "Article 1": 3, "Article 2": 0, "Article 3": 3}

REVISION = """Draft CARTIF Agreement on Trade Facilitation
The Parties, [recognizing] the importance of transit,

Article 1: Scope
1. This Agreement applies to goods in transit.
2. [KAZ: Each Party shall publish] its rules.

Article 2: Transparency
1. Each Party shall publish its laws promptly.

Article 3: Fees
1. Fees shall not exceed [5] per cent of the value of the goods.

Article 4: Cooperation
1. The Parties shall cooperate [through the Committee].
"""
#: [recognizing] | [KAZ: …] | none | [5] | [through the Committee].
REVISION_COUNTS = {"Preamble": 1, "Article 1": 1, "Article 2": 0, "Article 3": 1, "Article 4": 1}
FIXTURES = Path(__file__).parent / "fixtures" / "texts"


@dataclasses.dataclass
class Env:
    """One test's world: its structure, store, connector and SDK clients."""

    structure: Structure
    store: Store
    site: SiteCirculation
    graph: httpx.AsyncClient
    info: dict[str, Any]
    unique: str
    sp_http: requests.Session

    @property
    def drive(self) -> str:
        return str(self.info["drive_id"])

    def path(self, relative: str) -> str:
        return f"{self.unique}/{relative}"

    async def upload(self, relative: str, content: bytes) -> dict[str, Any]:
        r = await self.graph.put(f"/drives/{self.drive}/root:/{self.path(relative)}:/content", content=content)
        assert r.status_code in (200, 201), r.text
        return dict(r.json())

    async def get(self, relative: str) -> httpx.Response:
        return await self.graph.get(f"/drives/{self.drive}/root:/{self.path(relative)}")

    async def children(self, relative: str) -> list[str]:
        r = await self.graph.get(f"/drives/{self.drive}/root:/{self.path(relative)}:/children")
        return sorted(c["name"] for c in r.json().get("value", [])) if r.status_code == 200 else []

    def circulate(self, relative: str, title: str, **kwargs: Any) -> Any:
        request = CirculationRequest(self.path(relative), kwargs.pop("series", "WG-TF"), title, **kwargs)
        return circulate(request, structure=self.structure, site=self.site, store=self.store)

    def snapshot(self) -> tuple[Any, ...]:
        """What a failed circulation must not change: register, outbox, archive folder."""
        return (tuple(e.symbol for e in reg.entries(self.store)), tuple(m.idempotency_key for m in
                                                                       self.store.outbox(status=None)))


@pytest.fixture
def env(tenant_info: dict[str, Any], unique: str, tmp_path: Path, graph_http: httpx.AsyncClient,
        sp_http: requests.Session) -> Iterator[Env]:
    base = own_structure(STRUCTURE, unique)
    structure = base.model_copy(update={"series": base.series.model_copy(
        update={"register_list": f"{unique} Document register"})})
    with permission_site(tenant_info, structure) as perms:
        # The permission cycle builds the folders and groups first, as in production.
        built = reconcile(build_desired(structure), perms.connector, perms.connector, MemoryAuditLog(),
                          policy=GuardPolicy())
        assert not built.failed
        site = build_site_circulation(perms.settings, perms.authenticator, structure)
        with Store.open(f"sqlite:///{tmp_path / 'store.db'}") as store:
            yield Env(structure, store, site, graph_http, tenant_info, unique, sp_http)
        site.close()


async def test_a_draft_and_its_revision_are_circulated_archived_compared_and_registered(env: Env) -> None:
    source = await env.upload("Working groups/WG-TF/Zero draft.txt", DRAFT.encode())
    # A second edit makes version 2.0 current: the pin must name it and hold its bytes.
    source = await env.upload("Working groups/WG-TF/Zero draft.txt", DRAFT.encode() + b"\n")
    first = env.circulate("Working groups/WG-TF/Zero draft.txt", "Zero draft")
    assert first.created and first.entry.symbol == "CARTIF/WG-TF/W/1"
    assert first.entry.kind == "original" and first.entry.revises is None and first.entry.restricted
    assert first.entry.source_version_id == "2.0"
    assert first.entry.source_item_id == source["id"]

    await env.upload("Working groups/WG-TF/Rev1.txt", REVISION.encode())
    second = env.circulate("Working groups/WG-TF/Rev1.txt", "Zero draft, Rev.1", kind="revision",
                           revises="CARTIF/WG-TF/W/1")
    assert second.created and second.entry.symbol == "CARTIF/WG-TF/W/1/Rev.1"
    assert second.entry.revises == "CARTIF/WG-TF/W/1"
    assert [e.symbol for e in reg.entries(env.store)] == ["CARTIF/WG-TF/W/1", "CARTIF/WG-TF/W/1/Rev.1"]

    # Two archive copies named by symbol, and the redline beside the revision's.
    archive = await env.children("Negotiating texts/Archive")
    assert archive == ["CARTIF_WG-TF_W_1.txt", "CARTIF_WG-TF_W_1_Rev.1.redline.html", "CARTIF_WG-TF_W_1_Rev.1.txt"]
    copy = await env.graph.get(f"/drives/{env.drive}/items/{first.entry.archive_item_id}/content",
                               follow_redirects=True)
    assert copy.content == DRAFT.encode() + b"\n"  # the pinned version's bytes
    assert first.entry.redline_url is None and second.entry.redline_path is not None
    redline = await env.graph.get(f"/drives/{env.drive}/root:/{second.entry.redline_path}:/content",
                                  follow_redirects=True)
    assert "Article 4" in redline.text and "<html" in redline.text.lower()

    # Bracket counts per article equal the hand counts.
    for entry, counts in ((first.entry, DRAFT_COUNTS), (second.entry, REVISION_COUNTS)):
        report = json.loads(entry.brackets_json)
        assert {a["key"]: a["segments"] for a in report["articles"]} == counts
        assert report["total"]["segments"] == sum(counts.values())
    comparison = json.loads(second.entry.comparison_json or "{}")
    assert comparison["added"] == ["Article 4"]
    assert set(comparison["changed"]) == {"Article 1", "Article 3"}

    # One event per entry, written with it.
    events = {m.idempotency_key: m.payload for m in env.store.outbox()}
    assert set(events) == {reg.event_key("CARTIF/WG-TF/W/1"), reg.event_key("CARTIF/WG-TF/W/1/Rev.1")}
    event = events[reg.event_key("CARTIF/WG-TF/W/1/Rev.1")]
    assert event["brackets_total"] == 4 and event["brackets_previous"] == 7
    assert event["folder"] == env.path("Working groups/WG-TF") and event["kind"] == "revision"
    assert event["redline_url"] == second.entry.redline_url

    # Columns on the source and on the archive copy.
    fields = (await env.graph.get(f"/drives/{env.drive}/root:/{env.path('Working groups/WG-TF/Rev1.txt')}:"
                                  "/listItem/fields")).json()
    assert (fields["Symbol"], fields["Revision"], fields["Status"]) == ("CARTIF/WG-TF/W/1/Rev.1", "Rev.1",
                                                                        "Circulated")
    assert fields["CirculatedOn"]
    fields = (await env.graph.get(f"/drives/{env.drive}/items/{second.entry.archive_item_id}/listItem/fields")).json()
    assert (fields["Symbol"], fields["Status"]) == ("CARTIF/WG-TF/W/1/Rev.1", "Archived")

    # The register list holds one item per text.
    items = env.site.register_items()
    assert sorted(i["fields"]["Symbol"] for i in items) == ["CARTIF/WG-TF/W/1", "CARTIF/WG-TF/W/1/Rev.1"]
    rev = next(i for i in items if i["fields"]["Symbol"] == "CARTIF/WG-TF/W/1/Rev.1")
    assert rev["fields"]["Revises"] == "CARTIF/WG-TF/W/1" and rev["fields"]["Brackets"] == 4
    assert rev["id"] == second.entry.register_item_id
    # … and participants may read it: unique permissions, Read for each delegation, Full Control for the owner.
    list_id = env.site.register_list_id()
    found = env.sp_http.get(f"{env.info['site_url']}/_api/web/lists(guid'{list_id}')/RoleAssignments"
                            "?$expand=Member,RoleDefinitionBindings").json()["d"]["results"]
    roles = {ra["Member"]["LoginName"]: {b["Name"] for b in ra["RoleDefinitionBindings"]["results"]} for ra in found}
    assert roles[f"{env.unique} CARTIF Delegation KAZ"] == roles[f"{env.unique} CARTIF Delegation KGZ"] == {"Read"}
    assert roles[f"{env.unique} CARTIF Secretariat"] == {"Full Control"}
    assert f"{env.unique} CARTIF WG-TF" not in roles


async def test_the_archive_copy_is_read_only_to_everyone_but_the_bot(env: Env) -> None:
    await env.upload("Working groups/WG-TF/Draft.txt", DRAFT.encode())
    result = env.circulate("Working groups/WG-TF/Draft.txt", "Draft")
    source_roles = env.site.role_assignments(env.path("Working groups/WG-TF/Draft.txt"))
    archive_roles = env.site.role_assignments(result.entry.archive_path)
    client_id = env.info["client_id"]
    bot = {login for login in archive_roles if client_id in login.lower()}
    assert len(bot) == 1 and archive_roles[bot.pop()] == {"Full Control"}
    others = {login: levels for login, levels in archive_roles.items() if client_id not in login.lower()}
    assert others and all(levels == {"Read"} for levels in others.values())
    # Exactly the principals that could read the source (the WG group, the chair's delegation, the owner).
    readers = {login for login, levels in source_roles.items() if levels - {"Limited Access"}}
    assert set(others) == readers - {login for login in readers if client_id in login.lower()}
    assert {f"{env.unique} CARTIF WG-TF", f"{env.unique} CARTIF Delegation KAZ", f"{env.unique} CARTIF Secretariat"
            } <= set(others)


async def test_circulating_the_same_content_again_changes_nothing(env: Env) -> None:
    await env.upload("Working groups/WG-TF/Draft.txt", DRAFT.encode())
    first = env.circulate("Working groups/WG-TF/Draft.txt", "Draft")
    before = env.snapshot(), await env.children("Negotiating texts/Archive"), len(env.site.register_items())
    again = env.circulate("Working groups/WG-TF/Draft.txt", "Draft again")
    await env.upload("Working groups/WG-TF/Copy of draft.txt", DRAFT.encode())
    copy = env.circulate("Working groups/WG-TF/Copy of draft.txt", "Draft copy")
    after = env.snapshot(), await env.children("Negotiating texts/Archive"), len(env.site.register_items())
    assert not again.created and not copy.created
    assert again.entry == first.entry == copy.entry
    assert after == before


@pytest.mark.parametrize(("name", "content", "kwargs", "message"), [
    ("Draft.txt", DRAFT.encode(), {"series": "WG-XX"}, "--series: unknown series 'WG-XX'"),
    (None, None, {}, "PATH: no file"),
    ("Draft.docx", DRAFT.encode(), {}, "Draft.docx"),
    ("Broken.docx", b"PK\x03\x04" + b"\x00" * 200, {}, "Broken.docx"),
    ("Draft.txt", DRAFT.encode(), {"kind": "revision", "revises": "CARTIF/WG-TF/W/99"},
     "--revises: no text was circulated as CARTIF/WG-TF/W/99"),
    ("Draft.txt", DRAFT.encode(), {"kind": "revision", "revises": "not a symbol"}, "--revises"),
    ("Draft.txt", DRAFT.encode(), {"kind": "addendum"}, "--addendum-to"),
])
async def test_bad_input_is_refused_and_changes_nothing(env: Env, name: str | None, content: bytes | None,
                                                        kwargs: dict[str, Any], message: str) -> None:
    if name is not None and content is not None:
        await env.upload(f"Working groups/WG-TF/{name}", content)
    target = f"Working groups/WG-TF/{name or 'Missing.txt'}"
    before = env.snapshot(), await env.children("Negotiating texts/Archive"), await _fields(env, target)
    with pytest.raises(UserError, match=re.escape(message)):
        env.circulate(target, "A text", **kwargs)
    after = env.snapshot(), await env.children("Negotiating texts/Archive"), await _fields(env, target)
    assert after == before
    lists = (await env.graph.get(f"/sites/{env.info['site_id']}/lists")).json()["value"]
    assert env.structure.series.register_list not in {lst["displayName"] for lst in lists}


async def test_a_password_protected_docx_is_refused(env: Env) -> None:
    await env.upload("Working groups/WG-TF/Protected.docx", (FIXTURES / "encrypted.docx").read_bytes())
    before = env.snapshot(), await env.children("Negotiating texts/Archive")
    with pytest.raises(UserError, match=re.escape("Protected.docx: is a password-protected")):
        env.circulate("Working groups/WG-TF/Protected.docx", "Protected")
    assert (env.snapshot(), await env.children("Negotiating texts/Archive")) == before


#: Counted by hand in the Word fixtures' text (tests/fixtures/texts/make_fixtures.py): nested
#: brackets count once each, "[Article 4 bis: …]" is one segment around the whole article.
ZERO_DRAFT_DOCX = {"Preamble": 4, "Article 1": 2, "Article 2": 4, "Article 3": 0, "Article 4": 4,
                   "Article 4 bis": 2, "Article 5": 2, "Annex I": 2}
REV1_DOCX = {"Preamble": 2, "Article 1": 1, "Article 2": 1, "Article 3": 2, "Article 4": 0, "Article 5": 3,
             "Article 5 bis": 2, "Article 6": 0, "Annex I": 0}


async def test_word_documents_circulate_with_their_bracket_counts(env: Env) -> None:
    await env.upload("Working groups/WG-TF/Zero draft.docx", (FIXTURES / "zero_draft.docx").read_bytes())
    await env.upload("Working groups/WG-TF/Zero draft Rev.1.docx", (FIXTURES / "rev1.docx").read_bytes())
    first = env.circulate("Working groups/WG-TF/Zero draft.docx", "Zero draft")
    second = env.circulate("Working groups/WG-TF/Zero draft Rev.1.docx", "Zero draft, Rev.1", kind="revision",
                           revises=first.entry.symbol)
    assert (first.entry.symbol, second.entry.symbol) == ("CARTIF/WG-TF/W/1", "CARTIF/WG-TF/W/1/Rev.1")
    assert await env.children("Negotiating texts/Archive") == [
        "CARTIF_WG-TF_W_1.docx", "CARTIF_WG-TF_W_1_Rev.1.docx", "CARTIF_WG-TF_W_1_Rev.1.redline.html"]
    for entry, counts in ((first.entry, ZERO_DRAFT_DOCX), (second.entry, REV1_DOCX)):
        report = json.loads(entry.brackets_json)
        assert {a["key"]: a["segments"] for a in report["articles"]} == counts
    event = {m.idempotency_key: m.payload for m in env.store.outbox()}[reg.event_key(second.entry.symbol)]
    assert (event["brackets_previous"], event["brackets_total"]) == (20, 11)
    copy = await env.graph.get(f"/drives/{env.drive}/items/{second.entry.archive_item_id}/content",
                               follow_redirects=True)
    assert copy.content == (FIXTURES / "rev1.docx").read_bytes()


async def test_files_dropped_in_to_circulate_are_picked_up_once(env: Env) -> None:
    await env.upload("Working groups/WG-TF/To circulate/Non-paper on transit.txt", DRAFT.encode())
    await env.upload("Plenary/To circulate/Broken.docx", b"not a zip")
    outcomes = pickup(structure=env.structure, site=env.site, store=env.store)
    done = {o.path: o for o in outcomes}
    ok = done[env.path("Working groups/WG-TF/To circulate/Non-paper on transit.txt")]
    assert ok.result is not None and ok.result.created and ok.result.entry.symbol == "CARTIF/WG-TF/W/1"
    assert ok.result.entry.title == "Non-paper on transit"
    # The drop folder is the secretariat's; the archive copy's readers are the series folder's.
    archive_readers = set(env.site.role_assignments(ok.result.entry.archive_path))
    assert {f"{env.unique} CARTIF WG-TF", f"{env.unique} CARTIF Delegation KAZ"} <= archive_readers
    assert f"{env.unique} CARTIF WG-TF" not in env.site.role_assignments(
        env.path("Working groups/WG-TF/To circulate/Non-paper on transit.txt"))
    bad = done[env.path("Plenary/To circulate/Broken.docx")]
    assert bad.result is None and bad.error and "Broken.docx" in bad.error
    again = pickup(structure=env.structure, site=env.site, store=env.store)
    assert [o.path for o in again] == [env.path("Plenary/To circulate/Broken.docx")]
    assert [e.symbol for e in reg.entries(env.store)] == ["CARTIF/WG-TF/W/1"]


async def _fields(env: Env, relative: str) -> Any:
    r = await env.graph.get(f"/drives/{env.drive}/root:/{env.path(relative)}:/listItem/fields")
    return r.json() if r.status_code == 200 else None


async def test_the_cli_circulates_lists_shows_diffs_and_derestricts(
        env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from openpyxl import load_workbook

    from bot.cli import main

    structure_file = tmp_path / "structure.yaml"
    structure_file.write_text(STRUCTURE + f"root: {env.unique}\ngroup_names: {{prefix: '{env.unique} '}}\n"
                              f"series: {{register_list: '{env.unique} Document register'}}\n")
    monkeypatch.setenv("CARTIF_TENANT_FILE", str(Path(env.info["data_dir"]) / "tenant.json"))
    monkeypatch.setenv("CARTIF_STORE__URL", f"sqlite:///{tmp_path / 'cli.db'}")
    await env.upload("Working groups/WG-TF/Draft.txt", DRAFT.encode())
    await env.upload("Working groups/WG-TF/Rev1.txt", REVISION.encode())
    s = ["--structure", str(structure_file)]

    assert main(["circulate", env.path("Working groups/WG-TF/Draft.txt"), "--series", "WG-TF", "--title", "Draft",
                 "--by", "james.okafor@cartif.onmicrosoft.com", *s]) == 0
    assert "circulated: CARTIF/WG-TF/W/1  Draft" in capsys.readouterr().out
    assert main(["circulate", env.path("Working groups/WG-TF/Rev1.txt"), "--series", "WG-TF", "--title",
                 "Draft, Rev.1", "--revises", "CARTIF/WG-TF/W/1", "--json", *s]) == 0
    assert json.loads(capsys.readouterr().out)["symbol"] == "CARTIF/WG-TF/W/1/Rev.1"
    # A bad --revises: one line, exit status 1.
    assert main(["circulate", env.path("Working groups/WG-TF/Rev1.txt"), "--series", "WG-TF", "--title", "X",
                 "--revises", "CARTIF/WG-TF/W/7", *s]) == 1
    assert "no text was circulated as CARTIF/WG-TF/W/7" in capsys.readouterr().err

    assert main(["register", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["symbol"], r["brackets"], r["clean_articles"]) for r in rows] == [
        ("CARTIF/WG-TF/W/1", 7, 1), ("CARTIF/WG-TF/W/1/Rev.1", 4, 1)]
    assert main(["register", "list"]) == 0
    table = capsys.readouterr().out
    assert "CARTIF/WG-TF/W/1/Rev.1" in table and "2 text(s)" in table
    assert main(["register", "list", "--csv"]) == 0
    assert capsys.readouterr().out.splitlines()[2].startswith("CARTIF/WG-TF/W/1/Rev.1,WG-TF,revision,")
    assert main(["register", "list", "--xlsx", str(tmp_path / "register.xlsx")]) == 0
    sheet = load_workbook(tmp_path / "register.xlsx")["Register"]
    assert [c.value for c in sheet[1]][:3] == ["symbol", "series", "kind"]
    assert sheet["A3"].value == "CARTIF/WG-TF/W/1/Rev.1" and sheet.max_row == 3

    assert main(["register", "show", "CARTIF/WG-TF/W/1/Rev.1"]) == 0
    shown = capsys.readouterr().out
    assert "revision of CARTIF/WG-TF/W/1" in shown and "version 1.0" in shown
    assert "brackets 7 → 4 (-3)" in shown and "added: Article 4" in shown
    assert main(["register", "show", "CARTIF/WG-TF/W/1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["revised_by"] == ["CARTIF/WG-TF/W/1/Rev.1"] and data["changes"] is None
    assert data["circulated_by"] == "james.okafor@cartif.onmicrosoft.com"
    assert {a["key"]: a["segments"] for a in data["brackets"]["articles"]} == DRAFT_COUNTS

    assert main(["register", "diff", "CARTIF/WG-TF/W/1", "CARTIF/WG-TF/W/1/Rev.1", "--json",
                 "--html", str(tmp_path / "redline.html")]) == 0
    diff = json.loads(capsys.readouterr().out)
    assert diff["added"] == ["Article 4"] and diff["removed"] == []
    assert diff["brackets"] == {"before": 7, "after": 4, "change": -3}
    assert "Article 4" in (tmp_path / "redline.html").read_text()
    assert main(["register", "show", "CARTIF/WG-TF/W/9"]) == 1
    assert "no text was circulated as CARTIF/WG-TF/W/9" in capsys.readouterr().err

    assert main(["derestrict", "CARTIF/WG-TF/W/1", "--by", "HoD decision 12 May", *s]) == 0
    capsys.readouterr()
    assert main(["register", "show", "CARTIF/WG-TF/W/1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert not data["restricted"] and data["derestricted_by"] == "HoD decision 12 May"
    items = {i["fields"]["Symbol"]: i["fields"] for i in env.site.register_items()}
    assert items["CARTIF/WG-TF/W/1"]["Status"] == "Derestricted"
    assert items["CARTIF/WG-TF/W/1/Rev.1"]["Status"] == "Restricted"

    # The service cycle's step picks up a dropped file; the CLI's --pickup then finds nothing new.
    from bot.registering import CirculationStep

    monkeypatch.setenv("CARTIF_PERMISSIONS__STRUCTURE_PATH", str(structure_file))
    await env.upload("Plenary/To circulate/Opening statement.txt", b"Opening\n[KAZ: Welcome] all.\n")
    settings = Settings.load(env_file=None)
    with Store.open(settings.store.url) as store:
        step = await CirculationStep().run(types.SimpleNamespace(settings=settings, store=store))
    assert step.counts == {"circulated": 1, "failed": 0, "seen": 1}
    assert step.detail == {"circulated": ["CARTIF/PLEN/W/1"]}
    assert main(["circulate", "--pickup", *s]) == 0
    assert "nothing to circulate" in capsys.readouterr().out
    assert main(["circulate", "--pickup", "--series", "PLEN", *s]) == 1
    assert "--pickup takes no PATH" in capsys.readouterr().err


async def test_a_large_text_is_archived_through_an_upload_session(env: Env) -> None:
    body = "".join(f"Article {i}: Part {i}\n1. Each Party shall [endeavour to] apply measure {i}. {'x' * 2000}\n\n"
                   for i in range(1, 2700))
    content = ("Large draft\n\n" + body).encode()
    assert len(content) > 5 * 1024 * 1024  # above the 4 MiB simple-upload limit: two fragments or more
    await env.upload("Working groups/WG-TF/Large.txt", content)
    result = env.circulate("Working groups/WG-TF/Large.txt", "Large draft")
    copy = await env.graph.get(f"/drives/{env.drive}/items/{result.entry.archive_item_id}/content",
                               follow_redirects=True)
    assert copy.content == content
    assert json.loads(result.entry.brackets_json)["total"]["segments"] == 2699
    roles = env.site.role_assignments(result.entry.archive_path)
    assert {frozenset(v) for login, v in roles.items() if env.info["client_id"] not in login.lower()} == {
        frozenset({"Read"})}


async def test_a_crash_before_the_store_commit_is_repaired_by_running_again(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    await env.upload("Working groups/WG-TF/Draft.txt", DRAFT.encode())

    def crash(*args: Any, **kwargs: Any) -> bool:
        raise RuntimeError("the process died here")

    with monkeypatch.context() as m:
        m.setattr(reg, "record_circulation", crash)
        with pytest.raises(RuntimeError):
            env.circulate("Working groups/WG-TF/Draft.txt", "Draft")
    assert reg.entries(env.store) == [] and env.store.outbox(status=None) == []
    assert [i["fields"]["Symbol"] for i in env.site.register_items()] == ["CARTIF/WG-TF/W/1"]  # written before
    result = env.circulate("Working groups/WG-TF/Draft.txt", "Draft")
    assert result.created and result.entry.symbol == "CARTIF/WG-TF/W/1"
    assert await env.children("Negotiating texts/Archive") == ["CARTIF_WG-TF_W_1.txt"]
    items = env.site.register_items()
    assert [i["id"] for i in items] == [result.entry.register_item_id]
    assert [m.idempotency_key for m in env.store.outbox()] == [reg.event_key("CARTIF/WG-TF/W/1")]


async def test_a_revision_dropped_with_its_revises_column_filled_in_becomes_rev_1(env: Env) -> None:
    await env.upload("Working groups/WG-TF/To circulate/Zero draft.txt", DRAFT.encode())
    [first] = pickup(structure=env.structure, site=env.site, store=env.store)
    assert first.result is not None and first.result.entry.symbol == "CARTIF/WG-TF/W/1"
    await env.upload("Working groups/WG-TF/To circulate/Zero draft (revised).txt", REVISION.encode())
    # The secretariat types the symbol into the file's Revises column (the library's grid view does
    # this PATCH); the column exists since the first pickup.
    r = await env.graph.patch(f"/drives/{env.drive}/root:/{env.path('Working groups/WG-TF/To circulate')}"
                              "/Zero draft (revised).txt:/listItem/fields", json={"Revises": "CARTIF/WG-TF/W/1"})
    assert r.status_code == 200, r.text
    [second] = pickup(structure=env.structure, site=env.site, store=env.store)
    assert second.result is not None and second.result.entry.symbol == "CARTIF/WG-TF/W/1/Rev.1"
    assert second.result.entry.revises == "CARTIF/WG-TF/W/1"
    assert await env.children("Negotiating texts/Archive") == [
        "CARTIF_WG-TF_W_1.txt", "CARTIF_WG-TF_W_1_Rev.1.redline.html", "CARTIF_WG-TF_W_1_Rev.1.txt"]
    assert {a["key"]: a["segments"] for a in json.loads(second.result.entry.brackets_json)["articles"]} == (
        REVISION_COUNTS)
    assert pickup(structure=env.structure, site=env.site, store=env.store) == []
