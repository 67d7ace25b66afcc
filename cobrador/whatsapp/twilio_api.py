"""Sending WhatsApp messages through Twilio's REST API, asynchronously.

One POST per message to `/2010-04-01/Accounts/{sid}/Messages.json`, form
encoded as Twilio expects (From, To, Body or ContentSid + ContentVariables,
MediaUrl, StatusCallback), with HTTP basic auth. Transient failures (429 and
5xx, network errors) are retried with exponential backoff; Twilio's error
codes come back in `SendError` so the caller can fall back to a template
(63016: outside the 24-hour window) or record the failure. A GET of the same
resource (filtered by To and From) lists what Twilio holds for one debtor:
the resend sweep asks it before sending a reply again.

The API base is configurable so the tests can run a fake Twilio server and
assert the exact requests; nothing else differs from production.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import aiohttp

logger = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://api.twilio.com"
OUTSIDE_WINDOW = 63016  # "Failed to send freeform message because you are outside the allowed window"
MAX_BODY = 1600  # Twilio's limit for one WhatsApp message body
REQUEST_SECONDS = 15  # one request to Twilio, at most


class SendError(Exception):
    """Twilio refused a message (or could not be reached)."""

    def __init__(self, message: str, *, status: Optional[int] = None, code: Optional[int] = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code

    @property
    def transient(self) -> bool:
        return self.status is None or self.status == 429 or self.status >= 500


@dataclass(frozen=True)
class TwilioConfig:
    """Where and as whom to send."""

    account_sid: str
    auth_token: str
    whatsapp_from: str  # "whatsapp:+14155238886"
    status_callback: Optional[str] = None
    api_base: str = DEFAULT_API_BASE
    max_attempts: int = 4
    backoff_seconds: float = 0.5


@dataclass
class TwilioSender:
    """Posts messages to Twilio. One `aiohttp` session per sender, created lazily."""

    config: TwilioConfig
    _session: Optional[aiohttp.ClientSession] = field(default=None, repr=False)

    async def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                auth=aiohttp.BasicAuth(self.config.account_sid, self.config.auth_token),
                timeout=aiohttp.ClientTimeout(total=REQUEST_SECONDS),
            )
        return self._session

    def longest_send_seconds(self) -> float:
        """How long `send` can take at most: every attempt timing out, and the backoffs between them."""
        attempts = self.config.max_attempts
        return attempts * REQUEST_SECONDS + self.config.backoff_seconds * (2 ** (attempts - 1) - 1)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(
        self,
        to_phone: str,
        body: Optional[str] = None,
        *,
        media_urls: Sequence[str] = (),
        content_sid: Optional[str] = None,
        content_variables: Optional[dict[str, str]] = None,
    ) -> dict[str, Any]:
        """Sends one message; returns Twilio's JSON (with `sid` and `status`).

        Raises:
            SendError: Twilio refused it, or it could not be delivered to
                Twilio after the retries.
        """
        form: list[tuple[str, str]] = [("From", self.config.whatsapp_from), ("To", f"whatsapp:{to_phone}")]
        if content_sid:
            form.append(("ContentSid", content_sid))
            if content_variables:
                form.append(("ContentVariables", json.dumps(content_variables, ensure_ascii=False)))
        elif body is not None:
            form.append(("Body", body))
        form += [("MediaUrl", url) for url in media_urls]
        if self.config.status_callback:
            form.append(("StatusCallback", self.config.status_callback))
        return await self._call("POST", data=form)

    async def sent_to(self, to_phone: str, page_size: int = 50) -> list[dict[str, Any]]:
        """The latest messages Twilio holds from our WhatsApp number to
        `to_phone` (one page of its Messages list, newest first), each as
        Twilio's JSON (`sid`, `body`, `num_media`, `status`, `date_created`...).

        Raises:
            SendError: Twilio could not be asked, after the retries.
        """
        params = {"To": f"whatsapp:{to_phone}", "From": self.config.whatsapp_from, "PageSize": str(page_size)}
        payload = await self._call("GET", params=params)
        listed = payload.get("messages") if isinstance(payload, dict) else None
        if not isinstance(listed, list):
            raise SendError("Twilio's list of messages could not be read")
        return [item for item in listed if isinstance(item, dict)]

    async def _call(
        self, method: str, *, data: Optional[list[tuple[str, str]]] = None, params: Optional[dict[str, str]] = None
    ) -> dict[str, Any]:
        """One request to the Messages resource, retried with backoff while it fails transiently."""
        url = f"{self.config.api_base.rstrip('/')}/2010-04-01/Accounts/{self.config.account_sid}/Messages.json"
        delay = self.config.backoff_seconds
        for attempt in range(1, self.config.max_attempts + 1):
            try:
                return await self._request(method, url, data, params)
            except SendError as error:
                if not error.transient or attempt == self.config.max_attempts:
                    raise
                logger.warning("Twilio %s attempt %s failed (%s); retrying in %.1f s", method, attempt, error, delay)
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    async def _request(
        self, method: str, url: str, form: Optional[list[tuple[str, str]]], params: Optional[dict[str, str]]
    ) -> dict[str, Any]:
        http = await self._http()
        try:
            async with http.request(method, url, data=form, params=params) as response:
                text = await response.text()
                try:
                    payload = json.loads(text) if text else {}
                except json.JSONDecodeError:
                    payload = {"message": text[:200]}
                if response.status >= 400:
                    raise SendError(
                        str(payload.get("message") or f"HTTP {response.status}"),
                        status=response.status,
                        code=payload.get("code"),
                    )
                return payload
        except aiohttp.ClientError as exc:
            raise SendError(f"cannot reach Twilio: {exc}") from exc
        except asyncio.TimeoutError as exc:
            raise SendError("Twilio did not answer in time") from exc


def split_body(text: str, limit: int = MAX_BODY) -> list[str]:
    """`text` in parts of at most `limit` characters, cut at a paragraph,
    line or word boundary when there is one."""
    parts: list[str] = []
    rest = text
    while len(rest) > limit:
        window = rest[:limit]
        cut = max(window.rfind("\n\n"), window.rfind("\n"), window.rfind(" "))
        if cut < limit // 2:
            cut = limit
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest or not parts:
        parts.append(rest)
    return parts
