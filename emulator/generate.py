"""Bulk content for the local tenant: a tree of N folders and M files in one transaction.

Used by ``POST /_admin/seed {"generate": …}`` (emulator/admin.py) and the benchmarks, which
need libraries of 10k–100k items to measure delta and permission scans against. Everything goes
through ``State.bulk_insert_items``, so each item has what a created item has (its own change
stamp for delta, list item id, first version) while 100k items take seconds. Names and shape are
drawn from ``random.Random(seed)``: the same seed gives the same tree.

Called through the admin API, the tenant's change hook (``Tenant.dispatch``) notifies drive
subscribers as for any other change; a later delta shows the items as any other change.
"""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING, Any

from emulator.state import StateError

if TYPE_CHECKING:
    from emulator.app import Tenant

#: Folder words in the negotiation's vocabulary (domain.md): rounds, working groups, kinds of text.
FOLDER_WORDS = ("Round", "WG-FW", "WG-TF", "WG-SPS", "WG-TBT", "WG-SRV", "WG-INV", "WG-MBP", "WG-DT",
                "WG-INST", "Drafts", "Submissions", "Circulated", "Annex", "Schedules", "Background",
                "Minutes", "Proposals", "Archive")
FILE_WORDS = ("Draft text", "Country submission", "Chair's note", "Non-paper", "Minutes", "Schedule",
              "Annex", "Consolidated text", "Comments", "Proposal")
MAX_ITEMS = 1_000_000


def generate_items(tenant: Tenant, drive_id: str, files: int, folders: int, *, depth: int, seed: int,
                   under: str = "", by: str = "System Account") -> dict[str, Any]:
    """Create ``folders`` folders at most ``depth`` levels deep and ``files`` files spread over them.

    The tree hangs below the folder at drive-relative path ``under`` (the root by default;
    created if missing). The
    first ``min(depth, folders)`` folders form a chain, so the tree reaches ``depth``; every
    other folder gets a random parent among the folders above the last level (or ``under``),
    and every file a random folder. Names are unique among siblings; a top-level name already
    taken gets a numeric suffix. Returns a summary (counts, depth reached, change range, time).
    """
    for name, value, low in (("files", files, 0), ("folders", folders, 0), ("depth", depth, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise StateError(400, "invalidRequest", f"{name} must be an integer ≥ {low}, not {value!r}.")
    if files + folders > MAX_ITEMS:
        raise StateError(400, "invalidRequest", f"files + folders must be at most {MAX_ITEMS}.")
    state = tenant.state
    if state.drive(drive_id) is None:
        raise StateError(404, "itemNotFound", f"The drive '{drive_id}' does not exist.")
    started = time.perf_counter()
    top = state.root(drive_id)
    for part in [p for p in under.split("/") if p]:  # ``under`` is created where missing
        existing = state.child_named(top, part)
        if existing is not None and not existing.is_folder:
            raise StateError(409, "nameAlreadyExists", f"'{existing.path}' is a file, not a folder.")
        top = existing or state.create_folder(top, part, by=by)
    rng = random.Random(seed)  # noqa: S311 - reproducible shapes, not security
    taken = {c.name.lower() for c in state.children(top, limit=1_000_000)}

    def top_name(name: str) -> str:
        candidate, n = name, 1
        while candidate.lower() in taken:
            stem, dot, ext = name.rpartition(".")
            candidate = f"{stem} {n}.{ext}" if dot and stem else f"{name} {n}"
            n += 1
        taken.add(candidate.lower())
        return candidate

    entries: list[tuple[int, str, bytes | None]] = []
    level: list[int] = []  # level of each folder entry (1 = directly below ``top``)
    above_last: list[int] = []  # folder entries that may still take child folders
    for i in range(folders):
        if i < depth:
            parent = i - 1  # the chain: -1 (top), 0, 1, …
        else:
            pick = rng.randrange(len(above_last) + 1)
            parent = -1 if pick == len(above_last) else above_last[pick]
        name = f"{rng.choice(FOLDER_WORDS)} {i + 1:05d}"
        entries.append((parent, top_name(name) if parent == -1 else name, None))
        level.append(1 if parent == -1 else level[parent] + 1)
        if level[-1] < depth:
            above_last.append(i)
    for j in range(files):
        pick = rng.randrange(folders + 1)
        parent = -1 if pick == folders else pick
        name = f"{rng.choice(FILE_WORDS)} {j + 1:06d}.txt"
        content = f"{name}\nGenerated for load tests (seed {seed}, file {j + 1} of {files}).\n".encode()
        entries.append((parent, top_name(name) if parent == -1 else name, content))
    first_seq = state.current_seq() + 1
    ids = state.bulk_insert_items(top, entries, by=by, mime="text/plain")
    return {
        "drive_id": drive_id, "under": top.path or "/", "folders": folders, "files": files,
        "items": len(ids), "depth": max(level, default=0), "seed": seed,
        "top_level": sum(1 for parent, _, _ in entries if parent == -1),
        "first_seq": first_seq if ids else None, "last_seq": state.current_seq() if ids else None,
        "seconds": round(time.perf_counter() - started, 3),
    }
