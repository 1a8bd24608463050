"""Client tokens: fixed tokens from settings, and signed, expiring tokens (HMAC-SHA256).

A signed token is ``v1.<payload>.<signature>``, both parts base64url without padding; the
payload is JSON ``{"sub": ..., "exp": <unix seconds>}``. Comparisons are constant-time.

``python -m gateway.auth --ttl 3600 --subject alice`` prints a token (``make token``).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import sys
import time
from dataclasses import dataclass

from gateway.settings import GatewaySettings
from voice.errors import SettingsError

PREFIX = "v1"


@dataclass(frozen=True)
class Identity:
    subject: str
    expires_at: float | None


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: str, payload: str) -> str:
    digest = hmac.new(secret.encode(), f"{PREFIX}.{payload}".encode(), hashlib.sha256).digest()
    return _b64encode(digest)


def sign_token(secret: str, subject: str, ttl_s: float, now: float | None = None) -> str:
    expires = int((time.time() if now is None else now) + ttl_s)
    payload = _b64encode(
        json.dumps({"sub": subject, "exp": expires}, separators=(",", ":")).encode()
    )
    return f"{PREFIX}.{payload}.{_signature(secret, payload)}"


class TokenVerifier:
    def __init__(self, tokens: tuple[str, ...], secret: str) -> None:
        self._tokens = [token.encode() for token in tokens]
        self._secret = secret

    def verify(self, token: str, now: float | None = None) -> Identity | None:
        """The token's identity, or None when it is unknown, forged, malformed or expired."""
        if not token or len(token) > 4096:
            return None
        candidate = token.encode()
        # Compare against every fixed token so the time taken says nothing about which matched.
        matched = False
        for known in self._tokens:
            matched |= hmac.compare_digest(candidate, known)
        if matched:
            return Identity("static", None)
        if self._secret and token.startswith(PREFIX + "."):
            return self._verify_signed(token, time.time() if now is None else now)
        return None

    def _verify_signed(self, token: str, now: float) -> Identity | None:
        parts = token.split(".")
        if len(parts) != 3:
            return None
        _, payload, signature = parts
        if not hmac.compare_digest(signature.encode(), _signature(self._secret, payload).encode()):
            return None
        try:
            claims = json.loads(_b64decode(payload))
            subject, expires = str(claims["sub"]), float(claims["exp"])
        except (ValueError, KeyError, TypeError):
            return None
        if expires <= now:
            return None
        return Identity(subject, expires)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print a signed client token for the gateway.")
    parser.add_argument("--subject", default="user", help="who the token is for")
    parser.add_argument("--ttl", type=float, default=3600.0, help="lifetime in seconds")
    args = parser.parse_args(argv)
    try:
        settings = GatewaySettings.from_env()
    except SettingsError as error:
        print(f"token: {error}", file=sys.stderr)
        return 2
    if not settings.token_secret:
        print("token: GATEWAY_TOKEN_SECRET is not set; signed tokens need it", file=sys.stderr)
        return 2
    print(sign_token(settings.token_secret, args.subject, args.ttl))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
