"""Commands: `registry.py` (the decorators that declare them and the lookup table), and the
commands themselves — `basics.py` (answered locally), `preferences.py` (the asker's own
settings), `subscriptions.py` (/watch, /daily), `admin.py`, `lookups/` (answered by workers).
Importing this package registers every command, whichever module asks first."""

from bot.commands import admin, basics, lookups, preferences, subscriptions  # noqa: F401  (registers the commands)
