"""Where the WhatsApp channel talks to and with which secret.

Kept free of Rasa imports: the action server reads it too (to sign the
links of the PDFs it attaches).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from cobrador.whatsapp.twilio_api import TwilioConfig

STATUS_PATH = "/webhooks/whatsapp/status"
LOCAL_TOKEN_FILE = Path("var/local_twilio_token")


@dataclass(frozen=True)
class ChannelSettings:
    """How the channel talks to Twilio, or that it runs locally."""

    auth_token: str
    public_url: str
    twilio: Optional[TwilioConfig]  # None: local mode, outbound goes to the outbox
    reengage_templates: dict[str, str]

    @property
    def local(self) -> bool:
        return self.twilio is None

    @classmethod
    def from_env(cls, credentials: Optional[dict[str, Any]] = None) -> ChannelSettings:
        values = {
            **{k.lower(): v for k, v in os.environ.items()},
            **{k.lower(): v for k, v in (credentials or {}).items() if v},
        }
        public_url = str(values.get("cobrador_public_url") or values.get("public_url") or "http://127.0.0.1:5005")
        sid, token = values.get("twilio_account_sid"), values.get("twilio_auth_token")
        whatsapp_from = values.get("twilio_whatsapp_from")
        templates = {
            lang: str(values[f"twilio_reengage_template_{lang}"])
            for lang in ("es", "en")
            if values.get(f"twilio_reengage_template_{lang}")
        }
        if sid and token and whatsapp_from:
            twilio = TwilioConfig(
                account_sid=str(sid),
                auth_token=str(token),
                whatsapp_from=str(whatsapp_from),
                status_callback=public_url.rstrip("/") + STATUS_PATH,
                api_base=str(values.get("twilio_api_base") or "https://api.twilio.com"),
            )
            return cls(str(token), public_url.rstrip("/"), twilio, templates)
        return cls(local_token(), public_url.rstrip("/"), None, templates)


def local_token() -> str:
    """The signing secret of local mode: `COBRADOR_LOCAL_TOKEN`, or one generated once per machine."""
    token = os.environ.get("COBRADOR_LOCAL_TOKEN")
    if token:
        return token
    if LOCAL_TOKEN_FILE.exists():
        return LOCAL_TOKEN_FILE.read_text(encoding="utf-8").strip()
    LOCAL_TOKEN_FILE.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(20)
    LOCAL_TOKEN_FILE.write_text(token, encoding="utf-8")
    LOCAL_TOKEN_FILE.chmod(0o600)
    return token
