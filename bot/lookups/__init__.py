"""Every module here declares commands; importing the package registers them all."""

from bot.lookups import basics, fx, wiki  # noqa: F401
