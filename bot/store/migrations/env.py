"""Alembic environment for the store: runs on the connection ``Store.open`` hands over.

``bot.store.Store.open`` calls ``alembic.command.upgrade(config, "head")`` with
``config.attributes["connection"]`` set, so migrations run inside the store's own engine (same
URL, same SQLite pragmas). Offline (SQL script) mode is supported for reviewing a migration:
``alembic -x url=… upgrade head --sql`` with a config pointing here.
"""

from __future__ import annotations

from alembic import context

from bot.store.schema import metadata

config = context.config


def run_offline() -> None:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    context.configure(url=url, target_metadata=metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("bot.store migrations run through Store.open (no connection was given)")
    # render_as_batch: SQLite cannot ALTER most things; batch mode recreates tables for it.
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
