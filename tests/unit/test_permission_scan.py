"""The deep permission scan, on plain values.

We test these aspects: of the library's scanned list items, ``unique_below`` keeps exactly those with
unique permissions strictly below a governed folder at any depth — not the governed folders themselves,
not items already observed by the one-level listing, not items outside every governed folder, not items
of another library whose URL merely starts alike — matching paths case-insensitively and keeping the
item's own spelling, id and kind; ``next_link`` finds the next page in every OData flavour SharePoint
answers; ``observe`` leaves out everything inside the circulation archive, at any depth; a hand-made
restriction three levels down is drift, reported by default and reset when the structure says
``folders.undeclared: inherit``, after which the plan is empty.
"""

from __future__ import annotations

from typing import Any

from bot.model import ActualFolder, ActualState, DesiredState, FolderSpec, Link
from bot.observing import observe
from bot.planning import RemoveSharingLink, ResetInheritance, plan, undeclared_drift
from connectors.sharepoint_permissions import UniqueItem, next_link, unique_below
from tests.unit.fakes import UndeclaredOnlyReader

LIBRARY = "/sites/CARTIF/Shared Documents"


def _row(item_id: int, path: str, *, unique: bool, folder: bool = True) -> dict[str, Any]:
    return {"Id": item_id, "ID": item_id, "FileRef": f"{LIBRARY}/{path}" if path else LIBRARY,
            "FileSystemObjectType": 1 if folder else 0, "HasUniqueRoleAssignments": unique}


def test_unique_below_keeps_only_unobserved_unique_items_under_governed_folders() -> None:
    rows = [
        _row(1, "Working groups", unique=True),
        _row(2, "Working groups/WG-TF", unique=True),  # governed
        _row(3, "Working groups/WG-TF/Drafts", unique=False),
        _row(4, "Working groups/WG-TF/Drafts/Chairs only", unique=True),  # two levels down
        _row(5, "Working groups/WG-TF/Drafts/Chairs only/Old/n.docx", unique=True, folder=False),  # deeper
        _row(6, "Working groups/WG-TF/Shared", unique=True),  # one level down: already observed
        _row(7, "Elsewhere/private", unique=True),  # under no governed folder
        _row(8, "working groups/wg-tf/drafts/Lower", unique=True),  # SharePoint paths ignore case
        _row(9, "Working groups/WG-TF/Drafts/open.docx", unique=False, folder=False),
        {"Id": 10, "FileRef": f"{LIBRARY}2/Working groups/WG-TF/x/y", "FileSystemObjectType": 1,
         "HasUniqueRoleAssignments": True},  # another library, same prefix
    ]
    found = unique_below(rows, LIBRARY + "/", ["Working groups", "Working groups/WG-TF"],
                         ["Working groups/WG-TF/Shared"])
    assert found == [
        UniqueItem("Working groups/WG-TF/Drafts/Chairs only", 4, False),
        UniqueItem("Working groups/WG-TF/Drafts/Chairs only/Old/n.docx", 5, True),
        UniqueItem("working groups/wg-tf/drafts/Lower", 8, False),
    ]
    assert unique_below(rows, LIBRARY, [], []) == [], "no governed folder: nothing is below one"
    assert unique_below([_row(4, "Working groups/WG-TF/Drafts/Chairs only", unique=True)], LIBRARY,
                        ["WORKING GROUPS/WG-TF"], ["working groups/wg-tf/drafts/chairs only"]) == []


def test_next_link_in_every_odata_flavour() -> None:
    url = "https://t/sites/CARTIF/_api/web/GetList('x')/items?$skiptoken=Paged%3DTRUE%26p_ID%3D5000&$top=5000"
    assert next_link({"value": [], "odata.nextLink": url}) == url
    assert next_link({"value": [], "@odata.nextLink": url}) == url
    assert next_link({"d": {"results": [], "__next": url}}) == url
    assert next_link({"value": []}) is None
    assert next_link({"d": {"results": []}}) is None



def _item(path: str, links: frozenset[Link] = frozenset()) -> ActualFolder:
    return ActualFolder(path, True, frozenset({("CARTIF Secretariat", "Edit")}), links)


def test_observe_leaves_out_everything_inside_the_archive_at_any_depth() -> None:
    archive = "Negotiating texts/Archive"
    desired = DesiredState((FolderSpec(archive, False, frozenset(), "r"),), (), item_managed=frozenset({archive}))
    items = [f"{archive}/W-1.txt", f"{archive}/2026/W-2.txt", f"{archive}/2026/a/W-3.txt",
             f"{archive} 2/x.txt", "Negotiating texts/Drafts/deep/x.txt"]
    actual = observe(desired, UndeclaredOnlyReader({p: _item(p) for p in items}))
    assert sorted(actual.undeclared) == [f"{archive} 2/x.txt", "Negotiating texts/Drafts/deep/x.txt"]


def test_a_restriction_three_levels_down_is_reported_or_reset_and_the_second_plan_is_empty() -> None:
    governed = FolderSpec("Working groups/WG-TF", False, frozenset(), "r")
    deep = "Working groups/WG-TF/Drafts/Chairs only/2026"
    link = Link("SharingLinks.1.OrganizationView.2", "Read")
    actual = ActualState({governed.path: ActualFolder(governed.path, False, frozenset())}, {},
                         undeclared={deep: _item(deep, frozenset({link}))})
    report = DesiredState((governed,), ())
    assert list(undeclared_drift(actual)) == [deep]
    assert not plan(report, actual)
    inherit = DesiredState((governed,), (), undeclared="inherit")
    fixing = plan(inherit, actual)
    assert [(type(a), a.target) for a in fixing] == [(RemoveSharingLink, deep), (ResetInheritance, deep)]
    fixed = ActualState(actual.folders, {})
    assert not plan(inherit, fixed) and not undeclared_drift(fixed)
