"""Every module here declares one lookup; importing the package registers them all."""

from bot.commands.lookups import fx, reviews, weather, wiki  # noqa: F401
