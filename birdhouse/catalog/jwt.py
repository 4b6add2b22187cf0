"""JWT tokens (SPEC §7.6): HS256, signed with the workspace admin token.

Claims: ``workspace_id``, ``name``, ``exp`` (required; expired → 403),
``scopes: [{type, resource, fixed_params?, filter?}]``, ``limits: {rps}?``.
Nothing is stored: the signature and the expiry are the whole check, so
refreshing the admin token invalidates every JWT signed with it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from typing import Any


class JwtInvalid(Exception):
    """Not a valid, unexpired JWT of ours."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


HEADER = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())


def looks_like_jwt(token: str) -> bool:
    parts = token.split(".")
    if len(parts) != 3 or token.startswith("p."):
        return False
    try:
        header = json.loads(_unb64(parts[0]))
    except (ValueError, binascii.Error):
        return False
    return isinstance(header, dict) and header.get("alg") == "HS256"


def encode_jwt(claims: dict[str, Any], key: str) -> str:
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{HEADER}.{payload}".encode("ascii")
    return f"{HEADER}.{payload}.{_b64(hmac.new(key.encode(), signing_input, hashlib.sha256).digest())}"


def unverified_claims(token: str) -> dict[str, Any]:
    """The claims, to find the workspace whose key verifies the signature."""
    try:
        claims = json.loads(_unb64(token.split(".")[1]))
    except (ValueError, IndexError, binascii.Error):
        raise JwtInvalid("undecodable payload") from None
    if not isinstance(claims, dict):
        raise JwtInvalid("the payload is not an object")
    return claims


def verify_jwt(token: str, key: str, now: float | None = None) -> dict[str, Any]:
    header, payload, signature = token.split(".")
    expected = _b64(hmac.new(key.encode(), f"{header}.{payload}".encode("ascii"), hashlib.sha256).digest())
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        raise JwtInvalid("bad signature")
    claims = unverified_claims(token)
    expires = claims.get("exp")
    if not isinstance(expires, int | float) or isinstance(expires, bool):
        raise JwtInvalid("exp is required")
    if expires <= (time.time() if now is None else now):
        raise JwtInvalid("expired")
    return claims
