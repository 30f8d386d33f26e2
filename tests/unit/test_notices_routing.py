"""Routing of notices to Teams channels, on the default structure (plain values, no tenant).

We test these aspects: the leak test — for every governed folder (and a file in it), and for an
undeclared subfolder of each that someone restricted by hand (observed by the permission cycle,
``observed_readers``), with a file in it and a file deeper down, × every channel of the default
structure plus one channel per delegation, a routed notice means every person of the channel's
audience can read the item by an independently computed effective grant (the model alone would
have leaked the restricted items, and the restricted items still reach the channels that can read
them); a hand-restricted folder renamed or moved is not named to channels that cannot read it;
``observed_readers`` picks exactly the undeclared unique items and the governed folders whose
grants drifted, and ``narrowed`` says which channels were left out; a delegation's private
folders reach only its own channel and the Secretariat; moves between audiences never name a path
a channel cannot read; the expected channels for the three kinds of folder the issue names; the
structure rejects a channel with an unknown group ref.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pytest

from bot.desired import build_desired
from bot.model import ActualFolder, ActualState, DesiredState
from bot.notices.routing import Router, expand_channels, observed_readers
from config.structure import ChannelSpec, Structure, StructureError, load_structure, parse_structure


@pytest.fixture(scope="module")
def structure() -> Structure:
    base = load_structure()
    delegations = ChannelSpec(name="Delegation {country}", for_each="participant", audience=["country:{country}"])
    return base.model_copy(update={"channels": [*base.channels, delegations]})


#: The undeclared subfolder someone restricted by hand inside every governed folder.
HAND = "Hand-restricted"
#: A group someone also granted there by hand: it can read the item, but the model never lets it.
OUTSIDE = "Someone's own group"


def effective_groups(desired: DesiredState, path: str, hand: Mapping[str, Iterable[str]] | None = None
                     ) -> set[str] | None:
    """Independent of the router: walk up from ``path`` to the first item with unique permissions,
    a declared one or one restricted by hand (``hand``: path → groups granted there)."""
    folders = {f.path: f for f in desired.folders}
    parts = [p for p in path.split("/") if p]
    while parts:
        key = "/".join(parts)
        if hand is not None and key in hand:
            return set(hand[key])
        spec = folders.get(key)
        if spec is not None and spec.unique:
            return {g.principal for g in spec.grants}
        parts.pop()
    return None


def restricted_by_hand(desired: DesiredState) -> dict[str, list[str]]:
    """For every governed folder someone can read, an undeclared subfolder narrowed by hand to ONE of
    its reader groups (the first by name) plus a group the model does not know."""
    hand: dict[str, list[str]] = {}
    for folder in desired.folders:
        readers = effective_groups(desired, folder.path)
        if readers:
            hand[f"{folder.path}/{HAND}"] = sorted({min(readers), OUTSIDE})
    return hand


def members(desired: DesiredState, groups: frozenset[str]) -> set[str]:
    return {person for g in desired.groups if g.name in groups for person in g.members}


def test_no_channel_hears_of_a_folder_one_of_its_members_cannot_read(structure: Structure) -> None:
    desired = build_desired(structure)
    hand = restricted_by_hand(desired)
    router = Router(structure, desired, observed=hand)
    model_only = Router(structure, desired)  # what routing did before it knew of hand-made permissions
    channels = expand_channels(structure)
    assert len(channels) == 9 + 3 + 9  # working groups, three plenary channels, nine delegations
    paths = [p for folder in desired.folders for p in (folder.path, f"{folder.path}/Draft protocol v3.docx")]
    hand_paths = [p for sub in hand for p in (sub, f"{sub}/Draft protocol v3.docx", f"{sub}/Notes/minutes.docx")]
    routed_pairs = hand_pairs = model_leaks = 0
    for path in [*paths, *hand_paths]:
        readers = effective_groups(desired, path, hand)
        heard = set(router.channels_for("/" + path))
        for channel in channels:
            readable_by = members(desired, frozenset(readers or ()))
            outsiders = members(desired, channel.audience) - readable_by
            if channel.name in model_only.channels_for("/" + path) and outsiders:
                model_leaks += 1
            if channel.name not in heard:
                continue
            routed_pairs += 1
            hand_pairs += path in hand_paths
            assert readers is not None, f"{path} has no governed audience but reached {channel.name}"
            assert channel.audience <= readers, (path, channel.name)
            assert not outsiders, f"{channel.name} hears of {path}, which {sorted(outsiders)} cannot read"
    assert routed_pairs > 100, "the leak test routed (almost) nothing: it would pass vacuously"
    assert model_leaks > 50, "the hand-restricted subfolders narrow nothing: the test could not fail"
    assert hand_pairs > 20, "the hand-restricted items reach no channel at all: routed by nothing, not by grants"
    assert not [p for p in paths if model_only.channels_for("/" + p) != router.channels_for("/" + p)], (
        "hand-made permissions on a subfolder changed the routing of its parent")


def test_a_hand_restricted_folder_renamed_or_moved_is_not_named_to_channels_that_cannot_read_it(
        structure: Structure) -> None:
    desired = build_desired(structure)
    sub = "Working groups/WG-TF/Chairs only"
    secretariat = structure.group_name("secretariat")
    # Observed after the rename (the sync runs before the permission cycle): at its new name.
    router = Router(structure, desired, observed={sub: [secretariat]})
    routed = router.route_change("renamed", "/" + sub, "/Working groups/WG-TF/Drafts")
    assert [(r.channel, r.old_path) for r in routed] == [("Secretariat", "/Working groups/WG-TF/Drafts")]
    # Observed before, at its old name: its permissions travel with it to the new place.
    router = Router(structure, desired, observed={"Working groups/WG-TF/Drafts": [secretariat]})
    routed = router.route_change("moved", "/Plenary/Drafts", "/Working groups/WG-TF/Drafts")
    assert [r.channel for r in routed] == ["Secretariat"]


def test_observed_readers_are_the_hand_made_permissions_and_narrowed_says_who_was_left_out(
        structure: Structure) -> None:
    desired = build_desired(structure)
    secretariat = structure.group_name("secretariat")
    wg_tf = next(f for f in desired.folders if f.path == "Working groups/WG-TF")
    grants = frozenset((g.principal, g.level) for g in wg_tf.grants)
    actual = ActualState(
        folders={"Working groups/WG-TF": ActualFolder("Working groups/WG-TF", True,
                                                      grants | {("app:i:0i.t|ms.sp.ext|bot", "Full Control")}),
                 "Plenary": ActualFolder("Plenary", True, frozenset({(secretariat, "Full Control")})),
                 "Negotiating texts/Archive": ActualFolder("Negotiating texts/Archive", False, frozenset())},
        groups={},
        undeclared={"Working groups/WG-TF/Chairs only": ActualFolder(
            "Working groups/WG-TF/Chairs only", True, frozenset({(secretariat, "Edit"), ("user:a@b.org", "Read")}))})
    observed = observed_readers(desired, actual)
    # WG-TF matches the model (the bot's own app aside), Archive inherits: only the drifted Plenary
    # and the hand-made subfolder are kept, with their groups (people and apps are no audience).
    assert observed == {"Plenary": [secretariat], "Working groups/WG-TF/Chairs only": [secretariat]}
    router = Router(structure, desired, observed=observed)
    assert router.channels_for("/Working groups/WG-TF/Chairs only/x.docx") == ["Secretariat"]
    assert router.channels_for("/Working groups/WG-TF/Agenda.docx") == Router(structure, desired).channels_for(
        "/Working groups/WG-TF/Agenda.docx")
    assert router.channels_for("/Plenary/minutes.docx") == ["Secretariat"]
    assert router.narrowed("/Working groups/WG-TF/Agenda.docx") is None
    assert router.narrowed("/Working groups/WG-TF/Chairs only/x.docx") == (
        "Working groups/WG-TF/Chairs only", ["WG-TF", "Chief Negotiators", "Delegation KAZ"])


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
