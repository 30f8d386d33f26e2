"""Routing of notices to Teams channels, on the default structure (plain values, no tenant).

We test these aspects: the leak test — for every governed folder (and a file in it) × every
channel of the default structure plus one channel per delegation, a routed notice means every
person of the channel's audience can read the folder by an independently computed effective
grant; a delegation's private folders reach only its own channel and the Secretariat; moves
between audiences never name a path a channel cannot read; the expected channels for the three
kinds of folder the issue names; the structure rejects a channel with an unknown group ref.
"""

from __future__ import annotations

import pytest

from bot.desired import build_desired
from bot.model import DesiredState
from bot.notices.routing import Router, expand_channels
from config.structure import ChannelSpec, Structure, StructureError, load_structure, parse_structure


@pytest.fixture(scope="module")
def structure() -> Structure:
    base = load_structure()
    delegations = ChannelSpec(name="Delegation {country}", for_each="participant", audience=["country:{country}"])
    return base.model_copy(update={"channels": [*base.channels, delegations]})


def effective_groups(desired: DesiredState, path: str) -> set[str] | None:
    """Independent of the router: walk up from ``path`` to the first folder with unique permissions."""
    folders = {f.path: f for f in desired.folders}
    parts = [p for p in path.split("/") if p]
    while parts:
        spec = folders.get("/".join(parts))
        if spec is not None and spec.unique:
            return {g.principal for g in spec.grants}
        parts.pop()
    return None


def members(desired: DesiredState, groups: frozenset[str]) -> set[str]:
    return {person for g in desired.groups if g.name in groups for person in g.members}


def test_no_channel_hears_of_a_folder_one_of_its_members_cannot_read(structure: Structure) -> None:
    desired = build_desired(structure)
    router = Router(structure, desired)
    channels = expand_channels(structure)
    assert len(channels) == 9 + 3 + 9  # working groups, three plenary channels, nine delegations
    routed_pairs = 0
    for folder in desired.folders:
        for path in (folder.path, f"{folder.path}/Draft protocol v3.docx"):
            readers = effective_groups(desired, path)
            heard = set(router.channels_for("/" + path))
            for channel in channels:
                if channel.name not in heard:
                    continue
                routed_pairs += 1
                assert readers is not None, f"{path} has no governed audience but reached {channel.name}"
                assert channel.audience <= readers, (path, channel.name)
                readable_by = members(desired, frozenset(readers))
                outsiders = members(desired, channel.audience) - readable_by
                assert not outsiders, f"{channel.name} hears of {path}, which {sorted(outsiders)} cannot read"
    assert routed_pairs > 100, "the leak test routed (almost) nothing: it would pass vacuously"


def test_a_delegations_private_folders_reach_only_its_channel_and_the_secretariat(structure: Structure) -> None:
    router = Router(structure)
    for country in ("KAZ", "CHN", "UZB"):
        for path in (f"/Countries/{country}/Position paper.docx",
                     f"/Working groups/WG-TF/Submissions/{country}/Proposal.docx",
                     f"/Working groups/WG-DT/Submissions/{country}"):
            assert router.channels_for(path) == ["Secretariat", f"Delegation {country}"], path


def test_the_folders_the_issue_names_reach_the_expected_channels(structure: Structure) -> None:
    router = Router(load_structure())  # the shipped channels only
    assert router.channels_for("/Working groups/WG-TF/Agenda.docx") == ["WG-TF", "Chief Negotiators", "Secretariat"]
    assert router.channels_for("/Negotiating texts/CARTIF-W-3.docx") == ["Chief Negotiators", "Plenary",
                                                                        "Secretariat"]
    # An inheriting folder gets its parent's audience.
    assert router.channels_for("/Negotiating texts/Archive/old.docx") == router.channels_for("/Negotiating texts/x")
    assert router.channels_for("/Secretariat/budget.xlsx") == ["Secretariat"]
    # With delegation channels: KAZ chairs WG-TF (Edit), so its channel hears of WG-TF's folder too.
    assert "Delegation KAZ" in Router(structure).channels_for("/Working groups/WG-TF/Agenda.docx")
    assert "Delegation CHN" not in Router(structure).channels_for("/Working groups/WG-TF/Agenda.docx")
    # Outside the declared layout nobody is known to read it: silence.
    assert router.channels_for("/loose file.txt") == []
    assert router.channels_for("/Elsewhere/a.docx") == []


def test_a_move_out_of_a_private_folder_never_names_it(structure: Structure) -> None:
    router = Router(structure)
    routed = router.route_change("moved", "/Working groups/WG-TF/Proposal.docx", "/Countries/CHN/Proposal.docx")
    by_channel = {r.channel: r for r in routed}
    assert by_channel["WG-TF"].old_path is None and by_channel["WG-TF"].note == "moved in"
    assert by_channel["Secretariat"].old_path == "/Countries/CHN/Proposal.docx"
    assert by_channel["Delegation CHN"].note == "moved out"
    assert by_channel["Delegation CHN"].path == "/Countries/CHN/Proposal.docx"
    for r in routed:
        readable = set(router.channels_for(r.path))
        assert r.channel in readable
        if r.old_path:
            assert r.channel in router.channels_for(r.old_path)


def test_a_channel_naming_an_unknown_group_is_rejected() -> None:
    text = load_structure().model_dump(mode="json")
    text["channels"] = [{"name": "X", "audience": ["wg:WG-NOPE"]}]
    import yaml
    with pytest.raises(StructureError, match="channels"):
        parse_structure(yaml.safe_dump(text))


def test_a_renamed_private_folder_keeps_its_audience(structure: Structure) -> None:
    router = Router(structure)
    # "Countries/KAZ" has KAZ's own permissions; renamed, it still has them, although the model
    # would let all participants read an undeclared "Countries/KAZ old".
    routed = router.route_change("renamed", "/Countries/KAZ old", "/Countries/KAZ")
    assert sorted(r.channel for r in routed) == ["Delegation KAZ", "Secretariat"]
    assert "Plenary" in router.channels_for("/Countries/KAZ old")
