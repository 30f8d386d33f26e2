"""Who runs cycles: the holder of a PostgreSQL advisory lock, or of a file lock next to a SQLite store.

Where it sits: ``bot.service.serving`` asks ``leadership_for(settings)`` once, then keeps calling
``try_acquire`` (a standby, every ``service.standby_poll_seconds`` capped at the schedule
interval) and ``still_held`` (the leader, before every cycle). ``CycleRunner`` runs cycles, and
so sends notices, only while this replica leads.

* **PostgreSQL**: ``pg_try_advisory_lock(service.lock_key)`` on a dedicated connection that
  nothing else uses. The lock lives exactly as long as that session: when the leader dies (crash,
  kill -9, network loss) PostgreSQL ends its backend and frees the lock, and a standby's next try
  gets it — a takeover within one interval. TCP keepalives bound how long a silently vanished
  leader's session lingers.
* **SQLite**: one instance per store file, enforced with ``flock`` on ``STORE.lock``; a second
  instance is refused at start (``UserError``) rather than left waiting, since SQLite cannot be
  shared by replicas on several machines anyway.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from typing import IO, Any, Protocol

import sqlalchemy as sa

from bot.errors import UserError
from config.settings import Settings, mask_url_password

__all__ = ["FileLeadership", "Leadership", "PostgresLeadership", "leadership_for"]

log = logging.getLogger(__name__)


class Leadership(Protocol):
    """A lock only one replica holds. Blocking calls: run them in a worker thread."""

    #: "postgresql" or "file"
    kind: str

    def try_acquire(self) -> bool:
        """Take the lock if free; True when this replica holds it (now or already)."""
        ...

    def still_held(self) -> bool:
        """True while the lock is ours (the PostgreSQL session is alive)."""
        ...

    def release(self) -> None: ...


class PostgresLeadership:
    """``pg_try_advisory_lock`` on a dedicated connection (see the module docstring)."""

    kind = "postgresql"

    def __init__(self, url: str, key: int) -> None:
        # SQLAlchemy URL → libpq conninfo (postgresql+psycopg://… → postgresql://…).
        self._dsn = sa.engine.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._shown = mask_url_password(url)
        self.key = key
        self._conn: Any = None
        self.held = False

    def _connect(self) -> Any:
        import psycopg

        return psycopg.connect(self._dsn, autocommit=True, connect_timeout=10, keepalives=1,
                               keepalives_idle=10, keepalives_interval=5, keepalives_count=3,
                               application_name="cartif-bot leader lock")

    def try_acquire(self) -> bool:
        if self.held and self.still_held():
            return True
        try:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
            row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
            self.held = bool(row and row[0])
        except Exception as exc:
            log.warning("leader lock: cannot reach %s (%s)", self._shown, type(exc).__name__)
            self._drop()
        return self.held

    def still_held(self) -> bool:
        if not self.held or self._conn is None:
            return False
        try:
            self._conn.execute("SELECT 1").fetchone()
        except Exception as exc:
            # The session is gone, and with it the lock: another replica may lead by now.
            log.warning("leader lock lost: the database session ended (%s)", type(exc).__name__)
            self._drop()
            return False
        return True

    def _drop(self) -> None:
        self.held = False
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                log.debug("closing the lock connection failed", exc_info=True)
        self._conn = None

    def release(self) -> None:
        if self._conn is not None and self.held:
            try:
                self._conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
            except Exception:
                log.debug("unlock failed; closing the session frees the lock anyway", exc_info=True)
        self._drop()


class FileLeadership:
    """``flock`` on a file next to the SQLite store (see the module docstring)."""

    kind = "file"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def try_acquire(self) -> bool:
        if self._file is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle
        return True

    def still_held(self) -> bool:
        return self._file is not None

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def leadership_for(settings: Settings) -> Leadership:
    """The lock matching the store: PostgreSQL advisory lock, or a file lock for SQLite."""
    url = settings.store.url
    if url.startswith("postgresql"):
        return PostgresLeadership(url, settings.service.lock_key)
    path = url.split("///", 1)[1] if "///" in url else ""
    if not path or path == ":memory:":
        raise UserError("CARTIF_STORE__URL: `cartif-bot run` needs a database file or PostgreSQL, not memory")
    return FileLeadership(Path(path + ".lock"))
