"""``python -m bot`` is ``herald``."""

from bot.cli import main

main()
