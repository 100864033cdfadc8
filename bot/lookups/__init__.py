"""Every module here declares commands; importing the package registers them all."""

from bot.lookups import basics, fx, reviews, weather, wiki  # noqa: F401
