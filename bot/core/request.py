"""The platform-neutral message types every adapter speaks.

An adapter turns a platform update into a `Request`, and renders a `Reply` back. Both are
plain data so they travel through Celery as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from bot.core import i18n, keys
from bot.core.i18n import Message, t

REFRESH = t("Refresh")  # the button under a lookup's answer
MORE = t("More")  # the button under a page of an answer with more


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
    # The language the platform says the user reads ("de", "pt-BR"; Telegram's language_code,
    # Discord's interaction locale), "" when it does not say. /lang overrides it.
    locale: str = ""

    @property
    def user_key(self) -> str:
        """The user as the gate and admins know them: `platform:user`."""
        return f"{self.platform}:{self.user}"

    def to_dict(self) -> dict[str, Any]:
        # Spelled out rather than dataclasses.asdict(): this runs for every lookup message at
        # the gate, and asdict's recursive deep copy cost more than the rest of the gate's
        # Python side (bench/gate.py). `meta` holds JSON scalars, so a shallow copy will do.
        return {
            "platform": self.platform,
            "chat": self.chat,
            "user": self.user,
            "request_id": self.request_id,
            "command": self.command,
            "args": self.args,
            "meta": dict(self.meta),
            "received_at": self.received_at,
            "locale": self.locale,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Request:
        return cls(**data)


@dataclass(frozen=True)
class Reply:
    # A Message (bot/core/i18n.py) until it is rendered for its reader; adapters and senders
    # get rendered replies and read `shown`.
    text: Message
    # "answer" (a lookup result), "usage", "error", "limited", "notice", ...
    kind: str = "answer"
    # A short-lived reply (rate limit notices): platforms that can, show it to the user only.
    ephemeral: bool = False
    # Others in the chat must not see it (admin answers show other users' data): Discord
    # answers ephemerally, Telegram in the asker's private chat.
    private: bool = False
    # Buttons under the message: (label, data) — a Refresh button's data names the answer's
    # cache key (keys.refresh_data). Added where the reply is sent, never carried by tasks.
    buttons: tuple[tuple[Message, str], ...] = ()

    def rendered(self, language: str) -> Reply:
        """The reply as `language` reads it, buttons too (a rendered reply stays as it is)."""
        if isinstance(self.text, str) and all(isinstance(label, str) for label, _ in self.buttons):
            return self
        buttons = tuple((i18n.render(label, language), data) for label, data in self.buttons)
        return replace(self, text=i18n.render(self.text, language), buttons=buttons)

    def with_buttons(self, cache_key: str | None, page: int = 1, pages: int | None = None) -> Reply:
        """A lookup's answer gets a Refresh button (errors, usage, notices do not), and a
        "More" button while there is a page after `page` (of `pages`, by default the
        answer's own)."""
        if self.kind != "answer" or not cache_key or self.buttons:
            return self
        buttons: tuple[tuple[Message, str], ...] = ((REFRESH, keys.refresh_data(cache_key)),)
        if page < (pages if pages is not None else i18n.page_count(self.text)):
            buttons += ((MORE, keys.more_data(cache_key, page + 1)),)
        return replace(self, buttons=buttons)

    @property
    def shown(self) -> str:
        """The text to send: the reply must have been rendered."""
        if not isinstance(self.text, str):
            raise TypeError("a reply is rendered for its reader before it is sent")
        return self.text
