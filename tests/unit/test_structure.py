"""The structure file: the shipped CARTIF model loads, and each kind of mistake is reported with its
file, line and fix.

We test these aspects: the default file (nine participants, AZE a disabled observer, nine working
groups, the seeded roster); every bad-input case names the exact line of the offending node.
"""

from __future__ import annotations

import pytest

from config.structure import StructureError, load_structure, parse_structure

MINI = """\
version: 1
roles:
  chief_negotiator: {name: Chief Negotiator, groups: [chief_negotiators]}
  delegate: {name: Delegate}
participants:
  - {code: KAZ, name: Kazakhstan}
  - {code: KGZ, name: Kyrgyz Republic}
  - {code: AZE, name: Azerbaijan, status: observer, enabled: false}
working_groups:
  - code: WG-TF
    name: Trade facilitation
    members: [KAZ, KGZ]
    chair: KAZ
roster:
  - {person: a.b@mti.gov.kz, country: KAZ, roles: [chief_negotiator], working_groups: [WG-TF]}
  - {person: c.d@mineconom.gov.kg, country: KGZ, roles: [delegate]}
folders:
  owner: secretariat
  templates:
    - path: Plenary
      grants: {all_participants: Read}
    - path: "Working groups/{wg}"
      for_each: working_group
      grants: {"wg:{wg}": Contribute}
"""


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def error_for(text: str) -> str:
    with pytest.raises(StructureError) as info:
        parse_structure(text, "s.yaml")
    return str(info.value)


def test_the_default_file_models_cartif() -> None:
    s = load_structure()
    assert [p.code for p in s.enabled("participant")] == ["CHN", "GEO", "KAZ", "KGZ", "MNG", "PAK", "TJK", "TKM",
                                                          "UZB"]
    aze = s.participant("AZE")
    assert aze is not None and aze.status == "observer" and not aze.enabled
    assert s.participant("KGZ") is not None and s.participant("KGZ").name == "Kyrgyz Republic"  # type: ignore[union-attr]
    assert [w.code for w in s.working_groups] == ["WG-FW", "WG-TF", "WG-SPS", "WG-TBT", "WG-SRV", "WG-INV",
                                                  "WG-MBP", "WG-DT", "WG-INST"]
    assert len(s.roster) == 41 and "maria.santos@cartif.onmicrosoft.com" in {p.person for p in s.roster}


def test_a_minimal_file_needs_a_parent_folder_declared() -> None:
    message = error_for(MINI)
    at = line_of(MINI, 'path: "Working groups/{wg}"')
    assert f"s.yaml:{at}: folders.templates[1].path: the parent folder 'Working groups' is not declared" in message
    assert "fix: declare 'Working groups' above it" in message


VALID = MINI.replace('    - path: "Working groups/{wg}"', "    - path: Working groups\n      inherit: true\n"
                                                            '    - path: "Working groups/{wg}"')


def test_a_valid_minimal_file_loads() -> None:
    assert parse_structure(VALID).folders.templates[1].inherit


@pytest.mark.parametrize(("old", "new", "line_marker", "expected"), [
    ("members: [KAZ, KGZ]", "members: [KAZ, KGZ, XYZ]", "members: [KAZ, KGZ, XYZ]",
     "working_groups[0].members[2]: unknown country XYZ in working group WG-TF — fix: add XYZ under participants"),
    ("grants: {all_participants: Read}",
     "grants: {all_participants: Read}\n    - path: Plenary  # again\n      grants: {}", "# again",
     "folders.templates[1].path: duplicate folder 'Plenary' (also folders.templates[0]) — fix: declare each folder "
     "once"),
    ("{person: c.d@mineconom.gov.kg, country: KGZ, roles: [delegate]}", "{person: c.d@mineconom.gov.kg, "
     "roles: [delegate]}", "c.d@mineconom", "roster[1]: c.d@mineconom.gov.kg has no country — fix: add `country: XXX`"),
    ("roles: [delegate]}", "roles: [negotiator]}", "roles: [negotiator]",
     "roster[1].roles[0]: undefined role 'negotiator' for c.d@mineconom.gov.kg — fix: define it under roles"),
    ("  owner: secretariat\n", "  owner: null\n", "- path: Plenary",
     "folders.templates[0]: folder 'Plenary' would have no owner (no Full Control grant) — fix: give a group Full "
     "Control"),
    ("chair: KAZ", "chair: AZE", "chair: AZE", "working_groups[0].chair: chair AZE is not a member of WG-TF"),
    ("{code: KAZ, name: Kazakhstan}", "{code: kz, name: Kazakhstan}", "code: kz",
     "participants[0].code: String should match pattern '^[A-Z]{3}$' — fix: use an ISO 3166-1 alpha-3 code"),
    ('grants: {"wg:{wg}": Contribute}', 'grants: {"wg:{wg}": Contribute, "country:{country}": Read}',
     '"country:{country}": Read',
     "folders.templates[2].grants.country:{country}: group ref 'country:{country}' uses a placeholder this rule does "
     "not provide"),
    ("roles: [delegate]}", "roles: [delegate], working_groups: [WG-TF], colour: red}", "colour: red",
     "roster[1].colour: Extra inputs are not permitted — fix: remove this key or correct its spelling"),
])
def test_each_mistake_names_its_line_and_fix(old: str, new: str, line_marker: str, expected: str) -> None:
    assert old in VALID
    text = VALID.replace(old, new, 1)
    message = error_for(text)
    assert f"s.yaml:{line_of(text, line_marker)}: {expected}" in message, message


def test_a_person_in_a_working_group_their_country_is_not_in() -> None:
    text = VALID.replace("members: [KAZ, KGZ]", "members: [KAZ]").replace(
        "roles: [delegate]}", "roles: [delegate], working_groups: [WG-TF]}")
    message = error_for(text)
    assert f"s.yaml:{line_of(text, 'c.d@mineconom')}: roster[1].working_groups[0]: c.d@mineconom.gov.kg (KGZ) is in " \
           "WG-TF, which KGZ is not a member of" in message


def test_broken_yaml_and_missing_file() -> None:
    message = error_for(VALID.replace("roles:\n", "roles: [\n", 1))
    assert message.startswith("s.yaml:") and "not valid YAML" in message
    with pytest.raises(StructureError, match="cannot read the file"):
        load_structure("/nonexistent/structure.yaml")
