"""Client tokens: fixed tokens, and signed expiring ones (HMAC-SHA256)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from gateway.auth import Identity, TokenVerifier, main, sign_token

pytestmark = pytest.mark.unit

SECRET = "0123456789abcdef-secret"
NOW = 1_700_000_000.0


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def signed(payload: bytes, secret: str = SECRET) -> str:
    """A token built from the documented format, independent of the code under test."""
    encoded = b64(payload)
    digest = hmac.new(secret.encode(), f"v1.{encoded}".encode(), hashlib.sha256).digest()
    return f"v1.{encoded}.{b64(digest)}"


def test_static_token_is_accepted() -> None:
    verifier = TokenVerifier(("alpha", "beta"), "")
    assert verifier.verify("beta") == Identity("static", None)
    assert verifier.verify("alpha") == Identity("static", None)


@pytest.mark.parametrize("token", ["gamma", "alph", "alphaa", "ALPHA", "", "a" * 5000])
def test_unknown_static_token_is_refused(token: str) -> None:
    assert TokenVerifier(("alpha",), SECRET).verify(token) is None


def test_static_tokens_still_work_with_a_secret() -> None:
    assert TokenVerifier(("alpha",), SECRET).verify("alpha") == Identity("static", None)


def test_signed_token_is_accepted_until_it_expires() -> None:
    token = sign_token(SECRET, "alice", 60, now=NOW)
    verifier = TokenVerifier((), SECRET)
    assert verifier.verify(token, now=NOW) == Identity("alice", NOW + 60)
    assert verifier.verify(token, now=NOW + 59.9) == Identity("alice", NOW + 60)


@pytest.mark.parametrize("late_s", [60.0, 61.0, 86400.0])
def test_expired_signed_token_is_refused(late_s: float) -> None:
    token = sign_token(SECRET, "alice", 60, now=NOW)
    assert TokenVerifier((), SECRET).verify(token, now=NOW + late_s) is None


def test_signed_token_uses_the_clock_by_default() -> None:
    verifier = TokenVerifier((), SECRET)
    fresh = sign_token(SECRET, "bob", 300)
    stale = sign_token(SECRET, "bob", -1)
    identity = verifier.verify(fresh)
    assert identity is not None
    assert identity.subject == "bob"
    assert verifier.verify(stale) is None


def test_sign_token_matches_the_documented_format() -> None:
    token = sign_token(SECRET, "carol", 100, now=NOW)
    assert token == signed(b'{"sub":"carol","exp":1700000100}')


def test_token_signed_with_another_secret_is_refused() -> None:
    forged = sign_token("another-secret-of-16+", "alice", 60, now=NOW)
    assert TokenVerifier((), SECRET).verify(forged, now=NOW) is None


def test_tampered_payload_is_refused() -> None:
    token = sign_token(SECRET, "alice", 60, now=NOW)
    _, _, signature = token.split(".")
    payload = b64(json.dumps({"sub": "admin", "exp": NOW + 10**9}).encode())
    assert TokenVerifier((), SECRET).verify(f"v1.{payload}.{signature}", now=NOW) is None


def test_tampered_signature_is_refused() -> None:
    token = sign_token(SECRET, "alice", 60, now=NOW)
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert TokenVerifier((), SECRET).verify(flipped, now=NOW) is None


@pytest.mark.parametrize(
    "token",
    [
        "v1",
        "v1.",
        "v1..",
        "v1.abc",
        "v1.a.b.c",
        "v1.!!!.???",
        "v2.abc.def",
        "x" * 5000,
    ],
)
def test_malformed_token_is_refused(token: str) -> None:
    assert TokenVerifier((), SECRET).verify(token, now=NOW) is None


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"\xff\xfe",
        b"[1, 2]",
        b'"a string"',
        b'{"sub": "alice"}',
        b'{"exp": 1800000000}',
        b'{"sub": "alice", "exp": "soon"}',
        b'{"sub": "alice", "exp": null}',
    ],
)
def test_correctly_signed_but_malformed_claims_are_refused(payload: bytes) -> None:
    assert TokenVerifier((), SECRET).verify(signed(payload), now=NOW) is None


def test_correctly_signed_claims_from_the_format_are_accepted() -> None:
    token = signed(b'{"sub": "dave", "exp": 1800000000}')
    assert TokenVerifier((), SECRET).verify(token, now=NOW) == Identity("dave", 1.8e9)


def test_without_a_secret_signed_tokens_are_refused() -> None:
    verifier = TokenVerifier(("alpha",), "")
    assert verifier.verify(sign_token(SECRET, "alice", 60, now=NOW), now=NOW) is None
    # Not even a token "signed" with the empty secret itself.
    assert verifier.verify(sign_token("", "alice", 60, now=NOW), now=NOW) is None


def test_cli_prints_a_token_that_verifies(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GATEWAY_TOKEN_SECRET", SECRET)
    monkeypatch.delenv("GATEWAY_TOKENS", raising=False)
    assert main(["--subject", "erin", "--ttl", "120"]) == 0
    token = capsys.readouterr().out.strip()
    identity = TokenVerifier((), SECRET).verify(token)
    assert identity is not None
    assert identity.subject == "erin"


def test_cli_refuses_without_a_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GATEWAY_TOKEN_SECRET", raising=False)
    monkeypatch.setenv("GATEWAY_TOKENS", "alpha")
    assert main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "GATEWAY_TOKEN_SECRET" in captured.err
