"""The bot's own error kinds: what the cycle does when something fails.

Connectors raise ``connectors.errors``; settings raise ``config.settings.SettingsError``. The
cycle and the CLI decide with these kinds:

    BotError
    ├── UserError          a configuration or usage problem: one line, no traceback, exit 1
    ├── TemporaryError     retry this later (``delay`` seconds, if known)
    └── PermanentError     stop this item, report it, carry on with the others

``bot.cli.handle_cli_error`` turns all of them (and settings/connector errors) into one line.
"""

from __future__ import annotations

__all__ = ["BotError", "PermanentError", "TemporaryError", "UserError"]


class BotError(Exception):
    """Base of the bot's own errors."""


class UserError(BotError):
    """Something the operator must change (a flag, a setting, a file); the message says what."""


class TemporaryError(BotError):
    """A failure expected to go away (throttling, a 5xx, a network blip); retry after ``delay`` seconds."""

    def __init__(self, message: str, *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentError(BotError):
    """A failure that retrying cannot fix for this item (not found, forbidden, invalid)."""
