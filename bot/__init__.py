"""The bot process: adapters, the gate, the command registry."""
