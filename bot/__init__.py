"""cartif-bot: keeps the CARTIF negotiation's SharePoint workspace right.

Packages: ``bot`` (the cycle and the CLI), ``connectors`` (Microsoft 365 adapters), ``config``
(settings). The command line is ``bot.cli.main``.
"""

from __future__ import annotations

from bot.errors import BotError, PermanentError, TemporaryError, UserError

__all__ = ["BotError", "PermanentError", "TemporaryError", "UserError"]
