"""The `series:` section of the structure: defaults, overrides and the problems it reports."""

from __future__ import annotations

import pytest

from config.structure import StructureError, load_structure, parse_structure

BASE = """
version: 1
roles: {secretariat: {name: Secretariat, groups: [secretariat]}}
participants: [{code: KAZ, name: Kazakhstan}]
working_groups:
  - {code: WG-TF, name: Trade facilitation, members: all}
  - {code: WG-DT, name: Digital trade, members: all}
roster: [{person: a@b.org, secretariat: true, roles: [secretariat]}]
folders: {templates: [{path: Plenary, grants: {}}]}
"""


def test_default_series_are_one_per_working_group_plus_plenary_and_informal_papers() -> None:
    structure = parse_structure(BASE).with_overrides(root="Root")
    series = {s.code: s for s in structure.all_series()}
    assert list(series) == ["WG-TF", "WG-DT", "PLEN", "INF"]
    assert series["WG-TF"].folder == "Root/Working groups/WG-TF"
    assert series["WG-TF"].to_circulate == "Root/Working groups/WG-TF/To circulate"
    assert series["PLEN"].symbol == "CARTIF/{series}/W/{n}" and series["INF"].folder == "Root/Negotiating texts"
    assert structure.find_series("NOPE") is None


def test_the_shipped_structure_declares_the_series() -> None:
    codes = [s.code for s in load_structure().all_series()]
    assert codes[-2:] == ["PLEN", "INF"] and "WG-TF" in codes and len(codes) == 11


def test_series_can_be_declared_with_their_own_pattern_and_drop_folder() -> None:
    structure = parse_structure(BASE + """
series:
  per_working_group: false
  to_circulate: Inbox
  declared:
    - {code: JOB, name: Chair's non-papers, folder: Plenary/Chair, symbol: "CARTIF/JOB/{n}", to_circulate: Drop}
    - {code: RD, name: Room documents, folder: Plenary}
""")
    series = {s.code: s for s in structure.all_series()}
    assert list(series) == ["JOB", "RD"]
    assert (series["JOB"].symbol, series["JOB"].to_circulate) == ("CARTIF/JOB/{n}", "Plenary/Chair/Drop")
    assert series["RD"].to_circulate == "Plenary/Inbox"


@pytest.mark.parametrize(("section", "message"), [
    ('series: {symbol: "CARTIF/{series}/W"}', "series.symbol: symbol pattern"),
    ('series: {symbol: "CARTIF/{wg}/{n}"}', "must end with /{n}"),
    ("series: {declared: [{code: WG-TF, name: x, folder: Plenary}]}", "series WG-TF is declared twice"),
    ("series: {declared: [{code: PLEN, name: x, folder: 'Ple:nary'}]}", "is not a valid folder path"),
    ("series: {register_readers: [wg:WG-XX]}", "unknown working group"),
    ("series: {colour: blue}", "series.colour"),
])
def test_bad_series_sections_are_reported_with_their_line(section: str, message: str) -> None:
    with pytest.raises(StructureError) as caught:
        parse_structure(BASE + section + "\n", "s.yaml")
    text = str(caught.value)
    assert message in text and "s.yaml:10" in text


def test_working_group_series_follow_the_configured_folder() -> None:
    structure = parse_structure(BASE + 'series: {working_group_folder: "Groups/{wg}/Texts"}\n')
    assert structure.find_series("WG-DT").folder == "Groups/WG-DT/Texts"  # type: ignore[union-attr]
    with pytest.raises(StructureError, match="may use only"):
        parse_structure(BASE + 'series: {working_group_folder: "Groups/{country}"}\n')
