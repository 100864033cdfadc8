"""discord: adapter.py (bot process) and sender.py (workers); see bot/platforms/base.py."""
