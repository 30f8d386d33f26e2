"""cartif-bot's configuration: ``Settings.load()`` is the single entry (see ``config.settings``)."""

from __future__ import annotations

from config.settings import Settings, SettingsError

__all__ = ["Settings", "SettingsError"]
