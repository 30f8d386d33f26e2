"""``python -m bot`` runs the ``cartif-bot`` command line."""

from __future__ import annotations

import sys

from bot.cli import main

if __name__ == "__main__":
    sys.exit(main())
