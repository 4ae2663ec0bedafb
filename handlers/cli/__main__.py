"""``python -m handlers.cli``."""

from __future__ import annotations

from handlers.cli import main

main()
