"""The local tenant's quickXorHash, the one content hash SharePoint Online serves.

We test these aspects: published vectors (empty content; "hello world" from the quickxorhash C
library, an implementation of Microsoft's snippet); equality with a line-by-line port of
Microsoft's C# snippet on random contents of every length class (the fold-by-160 shortcut must
not change a bit); and a data directory written by the previous tenant (schema 1, no hash
column) upgraded on open with each file's hash computed from its current version, and the
subscriptions' reauthorization column added.
"""

from __future__ import annotations

import base64
import sqlite3
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.quickxor import quick_xor_hash
from emulator.state import SCHEMA_VERSION, State


def microsoft_snippet(array: bytes) -> str:
    """Microsoft's C# QuickXorHash (OneDrive dev center snippet), one HashCore call, ported as written."""
    data, mask64, width, shift, bits_in_last_cell = [0, 0, 0], (1 << 64) - 1, 160, 11, 32
    vector_index, vector_offset = 0, 0
    for i in range(min(len(array), width)):
        is_last_cell = vector_index == len(data) - 1
        bits_in_cell = bits_in_last_cell if is_last_cell else 64
        if vector_offset <= bits_in_cell - 8:
            for j in range(i, len(array), width):
                data[vector_index] = (data[vector_index] ^ (array[j] << vector_offset)) & mask64
        else:
            index1, index2 = vector_index, 0 if is_last_cell else vector_index + 1
            low = bits_in_cell - vector_offset
            xored = 0
            for j in range(i, len(array), width):
                xored ^= array[j]
            data[index1] = (data[index1] ^ (xored << vector_offset)) & mask64
            data[index2] = (data[index2] ^ (xored >> low)) & mask64
        vector_offset += shift
        while vector_offset >= bits_in_cell:
            vector_index = 0 if is_last_cell else vector_index + 1
            vector_offset -= bits_in_cell
    rgb = bytearray(data[0].to_bytes(8, "little") + data[1].to_bytes(8, "little")
                    + data[2].to_bytes(8, "little")[:4])
    for i, length_byte in enumerate(len(array).to_bytes(8, "little")):
        rgb[width // 8 - 8 + i] ^= length_byte
    return base64.b64encode(bytes(rgb)).decode()


def test_published_vectors() -> None:
    assert quick_xor_hash(b"") == "AAAAAAAAAAAAAAAAAAAAAAAAAAA="
    assert quick_xor_hash(b"hello world") == "aCgDG9jwBhDc4Q1yawMZAAAAAAA="


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.binary(min_size=150, max_size=2000)))
def test_same_bits_as_microsofts_snippet(content: bytes) -> None:
    assert quick_xor_hash(content) == microsoft_snippet(content)


def test_one_byte_more_or_one_byte_other_changes_the_hash() -> None:
    text = b"Article 3 [shall][should] apply" * 40
    assert quick_xor_hash(text) != quick_xor_hash(text + b"\0")
    assert quick_xor_hash(text) != quick_xor_hash(text[:-1] + b"!")


def test_a_schema_1_data_directory_gets_its_hashes_on_open(tmp_path: Path) -> None:
    path = tmp_path / "tenant.sqlite3"
    state = State(path)
    site = state.create_site("localhost", "/sites/U", "U")
    library = state.create_list(site, "Documents", base_template=101, url_name="Shared Documents")
    assert library.drive_id is not None
    root = state.root(library.drive_id)
    folder = state.create_folder(root, "Drafts", by="test")
    edited, _ = state.put_file(folder, "zero.txt", b"first", by="test")
    state.put_file(folder, "zero.txt", b"second", by="test")
    state.close()
    # What the previous tenant left: no quick_xor column, schema_version 1.
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE items DROP COLUMN quick_xor")
        db.execute("ALTER TABLE subscriptions DROP COLUMN challenged_at")
        db.execute("ALTER TABLE subscriptions DROP COLUMN include_security")
        db.execute("UPDATE meta SET value='1' WHERE key='schema_version'")

    upgraded = State(path)
    item = upgraded.item(library.drive_id, edited.id)
    assert item is not None and item.quick_xor == quick_xor_hash(b"second")  # the current version's bytes
    folder_now = upgraded.item(library.drive_id, folder.id)
    assert folder_now is not None and folder_now.quick_xor is None
    assert upgraded.meta("schema_version") == str(SCHEMA_VERSION)
    upgraded.close()
    State(path).close()  # a second open has nothing to upgrade
