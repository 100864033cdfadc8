"""The platform-neutral message types every adapter speaks.

An adapter turns a platform update into a `Request`, and renders a `Reply` back. Both are
plain data so they travel through Celery as JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Request:
    platform: str  # "console", "telegram", "discord"
    chat: str  # where the answer goes
    user: str  # who asked (platform user id)
    request_id: str  # platform + update/interaction id, e.g. "console:42"; unique per message
    command: str  # without the leading slash, lower case
    args: str  # the raw text after the command
    # Platform details the sender needs later (message id to edit, interaction token, ...).
    meta: dict[str, Any] = field(default_factory=dict)
    received_at: float = 0.0

    @property
    def user_key(self) -> str:
        """The user as the gate and admins know them: `platform:user`."""
        return f"{self.platform}:{self.user}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Request:
        return cls(**data)


@dataclass(frozen=True)
class Reply:
    text: str
    # "answer" (a lookup result), "usage", "error", "limited", "notice", ...
    kind: str = "answer"
    # A short-lived reply (rate limit notices): platforms that can, show it to the user only.
    ephemeral: bool = False
