"""HTTP to upstream APIs, with timeouts on every call and errors sorted by what to do next.

Providers call `Upstream.get_json`; it raises:
- `NotFound` (404): the answer is "no such thing" and is cached briefly;
- `RetryableError` (connection error, timeout, 5xx, 429, garbage body): the lookup task
  retries with backoff, honouring `Retry-After`;
- `PermanentError` (other 4xx): retrying cannot help; the user is told at once.
"""

from __future__ import annotations

import email.utils
import json
import time
from typing import Any

import requests

from bot.core import i18n
from bot.core.i18n import Message
from bot.ops import metrics, sentry
from bot.upstream.breaker import Breakers
from bot.upstream.quota import acquire as acquire_quota
from config import Settings

# An upstream's answer larger than this is refused (no API we call comes near it), so that a
# broken or hostile upstream cannot fill a worker's memory.
MAX_BODY = 4 * 1024 * 1024


class NotFound(Exception):
    """The upstream says the thing asked for does not exist; `message` is what users read."""

    def __init__(self, message: Message):
        super().__init__(i18n.render(message, i18n.SOURCE))
        self.message = message


class UpstreamError(Exception):
    def __init__(self, provider: str, kind: str, detail: str = "", retry_after: float | None = None):
        super().__init__(f"{provider}: {kind}{': ' + detail if detail else ''}")
        self.provider = provider
        self.kind = kind  # timeout, connection, http_503, http_429, bad_response, http_400...
        self.detail = detail
        self.retry_after = retry_after


class RetryableError(UpstreamError):
    pass


class PermanentError(UpstreamError):
    pass


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` is either seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class _NoNetrc(requests.auth.AuthBase):
    """No credentials: a session with no auth of its own reads ~/.netrc on every request
    (two stat calls, and a parse when it exists: 8% of a worker's samples while it sends
    notifications, py-spy), and would send any credentials it finds there. Every API here
    authenticates with its own key or token."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request


def new_session() -> requests.Session:
    """A pooled HTTP session for workers: proxies from the environment still apply."""
    session = requests.Session()
    session.auth = _NoNetrc()
    return session


class Upstream:
    """One per worker process: a pooled `requests.Session` with the configured timeouts.

    With a Redis client, every call also passes the provider's circuit breaker and quota
    (both shared by all workers), and reports its outcome to the breaker.
    """

    def __init__(self, settings: Settings, session: requests.Session | None = None, redis_client: Any = None):
        self.settings = settings
        self.session = session or new_session()
        self.session.headers["User-Agent"] = settings.HTTP_USER_AGENT
        self.session.headers["Accept"] = "application/json"
        self.redis = redis_client
        self.breakers = Breakers(redis_client, settings) if redis_client is not None else None

    def get_json(
        self,
        provider: str,
        url: str,
        params: dict[str, Any] | None = None,
        *,
        not_found: Message,
        method: str = "GET",
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        quota: str = "",
    ) -> Any:
        """Call `provider` (its breaker name) and return the JSON body. `quota` names the
        quota to charge when it differs from the provider (one API, several endpoints)."""
        if self.breakers is not None:
            self.breakers.allow(provider)
            acquire_quota(self.redis, self.settings, quota or provider)
        started = time.monotonic()
        try:
            data = self._call(provider, url, params, not_found, method, json_body, headers)
        except RetryableError as exc:
            metrics.UPSTREAM_ERRORS.labels(provider, exc.kind).inc()
            if self.breakers is not None and self.breakers.failure(provider):
                sentry.report(
                    f"circuit breaker open: {provider}",
                    ["breaker-open", provider],
                    level="warning",
                    provider=provider,
                )
            raise
        finally:
            metrics.LOOKUP_DURATION.labels(provider).observe(time.monotonic() - started)
        if self.breakers is not None:
            self.breakers.success(provider)
        return data

    def _call(
        self,
        provider: str,
        url: str,
        params: dict[str, Any] | None,
        not_found: Message,
        method: str,
        json_body: Any,
        headers: dict[str, str] | None,
    ) -> Any:
        connect, read = self.settings.UPSTREAM_CONNECT_TIMEOUT, self.settings.UPSTREAM_READ_TIMEOUT
        # requests bounds each wait for a byte (`read`), not a whole answer: the body is read
        # here against a deadline, so an upstream that trickles cannot hold a worker thread
        # for longer than connect + 2 × read (the pool has no time limits on threads).
        deadline = time.monotonic() + connect + read
        try:
            response = self.session.request(
                method,
                url,
                params=params,
                json=json_body,
                headers=headers,
                timeout=(connect, read),
                stream=True,
            )
            with response:
                status = response.status_code
                if status == 404:
                    raise NotFound(not_found)
                if status == 429 or status >= 500:
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    raise RetryableError(provider, f"http_{status}", retry_after=retry_after)
                if status >= 400:
                    raise PermanentError(provider, f"http_{status}")
                body = bytearray()
                for chunk in response.iter_content(65536):
                    body += chunk
                    if len(body) > MAX_BODY:
                        raise RetryableError(provider, "bad_response", "body too large")
                    if time.monotonic() > deadline:
                        raise RetryableError(provider, "timeout", "body too slow")
        except requests.Timeout as exc:
            raise RetryableError(provider, "timeout", type(exc).__name__) from exc
        except requests.RequestException as exc:
            raise RetryableError(provider, "connection", type(exc).__name__) from exc
        try:
            return json.loads(body)
        except ValueError as exc:
            raise RetryableError(provider, "bad_response", "body is not JSON") from exc
