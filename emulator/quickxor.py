"""QuickXorHash: the only content hash SharePoint Online and OneDrive for Business serve.

Graph's ``hashes`` resource says ``sha256Hash`` "isn't supported. Don't use." and that
``quickXorHash`` is the only hash guaranteed on OneDrive for work or school; SharePoint document
libraries are the same store. The tenant therefore serves ``file.hashes.quickXorHash`` and nothing
else, so that a client which compares ``sha256Hash`` is caught here, not in production.

The algorithm is Microsoft's published C# snippet ("QuickXorHash", OneDrive dev center): byte
``k`` of the content is XORed into a 160-bit register at bit ``11·k mod 160`` (wrapping round),
then the content length, as 8 little-endian bytes, is XORed into the register's last 8 bytes;
the digest is the register's 20 little-endian bytes in base64. Since ``11·160 ≡ 0 (mod 160)``,
bytes 160 apart land on the same bits: we fold the content into one 160-byte block with big-int
XORs first (about 3 ms per MB) and place those 160 bytes once.
"""

from __future__ import annotations

import base64

WIDTH_BITS = 160
SHIFT = 11
_BLOCK = WIDTH_BITS  # bytes 160 apart share a bit position
_MASK = (1 << WIDTH_BITS) - 1


def quick_xor_hash(content: bytes) -> str:
    """The base64 quickXorHash of ``content``, as Graph serves it in ``file.hashes``."""
    view = memoryview(content)
    folded = 0
    for offset in range(0, len(content), _BLOCK):
        folded ^= int.from_bytes(view[offset:offset + _BLOCK], "little")
    register = 0
    for index, byte in enumerate(folded.to_bytes(_BLOCK, "little")):
        if byte:
            placed = byte << (SHIFT * index) % WIDTH_BITS
            register ^= (placed & _MASK) | (placed >> WIDTH_BITS)
    digest = bytearray(register.to_bytes(WIDTH_BITS // 8, "little"))
    for index, length_byte in enumerate(len(content).to_bytes(8, "little")):
        digest[WIDTH_BITS // 8 - 8 + index] ^= length_byte
    return base64.b64encode(bytes(digest)).decode("ascii")
