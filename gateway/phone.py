"""Phone calls through Twilio: the voice webhook and the media stream (docs/gateway.md, "Phone").

``POST /twilio/voice`` is the webhook Twilio calls when the number rings. Its
``X-Twilio-Signature`` must be base64(HMAC-SHA1(auth token, URL + each POST parameter's name and
value, sorted by name)), the URL being ``GATEWAY_PUBLIC_URL`` plus the path Twilio asked for; a
request that does not verify gets 403 and is logged without its content. The answer is TwiML
that connects the call to ``/twilio/stream`` with a token for that call only (signed, valid
``STREAM_TOKEN_TTL_S``) in the stream's parameters; the stream's ``start`` must carry it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Mapping
from xml.sax.saxutils import escape, quoteattr

from gateway.auth import TokenVerifier, sign_token
from gateway.transports.twilio_messages import StreamStart

log = logging.getLogger(__name__)

VOICE_PATH = "/twilio/voice"
STREAM_PATH = "/twilio/stream"
# From the webhook's answer to the stream's start: Twilio connects within a second or two.
STREAM_TOKEN_TTL_S = 60.0
CALL_SID_MAX = 64


def twilio_signature(auth_token: str, url: str, params: Mapping[str, list[str]]) -> str:
    """What Twilio puts in X-Twilio-Signature for a form POST to ``url`` with ``params``."""
    payload = url + "".join(
        name + value for name in sorted(params) for value in sorted(set(params[name]))
    )
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def signature_valid(
    auth_token: str, url: str, params: Mapping[str, list[str]], signature: str
) -> bool:
    if not signature or len(signature) > 128:
        return False
    expected = twilio_signature(auth_token, url, params)
    return hmac.compare_digest(expected.encode(), signature.encode())


def stream_url(public_url: str) -> str:
    """The media stream's URL: ``wss://`` for an ``https://`` public URL, ``ws://`` for ``http://``."""
    scheme, _, rest = public_url.partition("://")
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}{STREAM_PATH}"


class CallTokens:
    """Short-lived tokens, one per call, signed with a key derived from the auth token."""

    def __init__(self, auth_token: str) -> None:
        key = hmac.new(auth_token.encode(), b"voice-gateway media stream", hashlib.sha256)
        self._secret = key.hexdigest()
        self._verifier = TokenVerifier((), self._secret)

    def issue(self, call_sid: str, now: float | None = None) -> str:
        return sign_token(self._secret, f"call:{call_sid}", STREAM_TOKEN_TTL_S, now=now)

    def accepts(self, start: StreamStart, now: float | None = None) -> bool:
        """Whether the stream's token was issued for this very call and is still valid."""
        identity = self._verifier.verify(start.parameters.get("token", ""), now=now)
        return identity is not None and identity.subject == f"call:{start.call_sid}"


def connect_twiml(url: str, token: str) -> str:
    """TwiML: connect the call to the bidirectional media stream at ``url``. Nothing follows
    ``<Connect>``, so the call ends when the stream closes."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Response><Connect><Stream url={quoteattr(url)}>"
        f'<Parameter name="token" value={quoteattr(token)}/>'
        "</Stream></Connect></Response>"
    )


def busy_twiml(message: str) -> str:
    """A call the gateway cannot take now: Twilio answers, says so, and hangs up (a 503 would
    make Twilio play its own "application error" message, or its fallback URL's answer)."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Response><Say>{escape(message)}</Say><Hangup/></Response>"
    )
