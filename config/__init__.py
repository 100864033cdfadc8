"""Settings for every process: `from config import get_settings`."""

from config.settings import ConfigError, Rate, Settings, get_settings, parse_rate

__all__ = ["ConfigError", "Rate", "Settings", "get_settings", "parse_rate"]
