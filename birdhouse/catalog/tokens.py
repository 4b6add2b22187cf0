"""Static tokens in Tinybird's format, and scopes.

Format (SPEC §7.1)::

    "p." + b64url(payload) + "." + b64url(HMAC-SHA256(secret, b64url(payload)))

``payload`` is ``json.dumps({"u": workspace, "id": token id, "host": region})``
with Python's default separators, keys in that order: third-party tools decode
it to find the API host, so the bytes must match what Tinybird mints.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass

import msgspec

from birdhouse.query.errors import SqlRefused
from birdhouse.query.guard import check_filter


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, payload_segment: str) -> str:
    return _b64(hmac.new(secret, payload_segment.encode("ascii"), hashlib.sha256).digest())


def mint_token(secret: bytes, workspace_id: str, token_id: str, host: str) -> str:
    payload = _b64(json.dumps({"u": workspace_id, "id": token_id, "host": host}).encode())
    return f"p.{payload}.{_mac(secret, payload)}"


@dataclass(frozen=True)
class TokenClaims:
    workspace_id: str
    token_id: str
    host: str


class TokenInvalid(Exception):
    """Malformed token or a signature that does not verify (→ 403)."""


def decode_token(secret: bytes, token: str) -> TokenClaims:
    """Verify the signature in constant time and return the claims.

    Raises :class:`TokenInvalid` for anything that is not a token we minted.
    The region (``host``) is *not* checked here: a well-signed token for
    another region gets a different answer (404) than a forgery (403)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenInvalid("token must have three dot-separated parts")
    payload_segment, signature = parts[1], parts[2]
    try:
        expected = _mac(secret, payload_segment)
    except UnicodeEncodeError:
        raise TokenInvalid("token is not ASCII") from None
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        raise TokenInvalid("bad signature")
    try:
        payload = json.loads(_unb64(payload_segment))
        return TokenClaims(str(payload["u"]), str(payload["id"]), str(payload.get("host", "")))
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise TokenInvalid("undecodable payload") from None


def decode_unverified_host(token: str) -> str | None:
    """The ``host`` claim of a token whose signature we could not check
    (used only to tell a user their token belongs to another region)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        host = json.loads(_unb64(parts[1])).get("host")
    except (ValueError, AttributeError, binascii.Error):
        return None
    return host if isinstance(host, str) else None


# ---------------------------------------------------------------- scopes

# Scope types that name a resource (SPEC §7.2: resource mandatory).
RESOURCE_SCOPES = frozenset({"DATASOURCES:APPEND", "DATASOURCES:READ", "DATASOURCES:DROP", "PIPES:READ", "PIPES:DROP"})
PLAIN_SCOPES = frozenset(
    {"ADMIN", "TOKENS", "DATASOURCES:CREATE", "PIPES:CREATE", "WORKSPACE:READ_ALL", "ORG_DATASOURCES:READ"}
)
# Internal scopes, never granted through the Tokens API.
ADMIN_USER = "ADMIN_USER"
USER = "USER"
FILTER_SCOPES = frozenset({"DATASOURCES:READ", "PIPES:READ"})
# What a JWT may carry (SPEC §7.6): reads, and appends where events.accept_jwt allows.
JWT_SCOPES = frozenset({"DATASOURCES:READ", "PIPES:READ", "DATASOURCES:APPEND"})


class Scope(msgspec.Struct, frozen=True, omit_defaults=True):
    """One grant. ``resource`` holds a data source or pipe *id* once stored."""

    type: str
    resource: str | None = None
    filter: str | None = None


class ScopeError(ValueError):
    """A scope string that cannot be granted."""


def parse_scope(text: str) -> Scope:
    """Parse ``TYPE:SUBTYPE[:resource][:filter]``; the filter is the rest of
    the string and may itself contain ``:``. The singular ``DATASOURCE:`` of
    the docs is accepted as an alias of the real plural form."""
    raw = text.strip()
    if raw.upper().startswith("DATASOURCE:"):
        raw = "DATASOURCES:" + raw[len("DATASOURCE:") :]
    if raw in PLAIN_SCOPES:
        return Scope(raw)
    parts = raw.split(":", 3)
    kind = ":".join(parts[:2])
    if kind in RESOURCE_SCOPES:
        if len(parts) < 3 or not parts[2]:
            raise ScopeError(f"Scope '{text}' needs a resource, like {kind}:<name>")
        sql_filter = parts[3] if len(parts) > 3 and parts[3] else None
        if sql_filter is not None and kind not in FILTER_SCOPES:
            raise ScopeError(f"Scope '{text}' does not take a filter")
        if sql_filter is not None:
            try:
                check_filter(sql_filter)
            except SqlRefused as exc:
                raise ScopeError(exc.message) from None
        return Scope(kind, parts[2], sql_filter)
    raise ScopeError(f"Invalid scope '{text}'")
