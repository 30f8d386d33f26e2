"""A store whose settings point Graph's change notifications at a receiver in the test's event loop.

For the tests that run ``bot.watching.watch`` against the local tenant (tests/test_notifications.py,
tests/test_watch_stop.py): the receiver listens on a free port of this machine, checks
``client_state``, and signals ``requests``; the settings (``tests.test_syncing.settings_for``,
store in ``data_dir``) carry that URL and secret, so the watch loop subscribes for it. ``cycles``
is the list to pass as ``on_cycle=cycles.append``.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bot.notifications import SyncRequests
from bot.receiver import Receiver, serve_receiver
from bot.store import Store
from bot.watching import Cycle
from config.settings import Settings
from tests.test_syncing import settings_for


@dataclasses.dataclass
class Notified:
    url: str
    settings: Settings
    store: Store
    requests: SyncRequests
    receiver: Receiver
    cycles: list[Cycle]


@contextlib.asynccontextmanager
async def notified_store(tenant_info: dict[str, Any], data_dir: Path, client_state: str) -> AsyncIterator[Notified]:
    """The receiver running and the store open, until the block ends (store first, then the receiver)."""
    requests = SyncRequests()
    receiver = Receiver(requests, client_state)
    async with serve_receiver(receiver) as port:
        url = f"http://127.0.0.1:{port}/notifications"
        settings = settings_for(tenant_info, data_dir, notifications={"url": url, "client_state": client_state})
        with Store.open(settings.store.url) as store:
            yield Notified(url, settings, store, requests, receiver, [])
