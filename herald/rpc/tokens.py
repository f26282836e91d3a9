"""Verifying bearer tokens: JWTs signed by an identity provider whose public keys are in a JWKS
file. Herald only verifies; issuing tokens is the provider's job (`herald token` mints some
for development).

Only asymmetric algorithms are accepted, from a fixed list, and each key only with its own
algorithm: a token that says `alg: none`, or HS256 with the public key as its secret, is
refused before any signature is checked. The JWKS file is read again when it changes, so a
provider's new key (a rotation) is accepted without a restart.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

logger = logging.getLogger(__name__)

ALGORITHMS = ("EdDSA", "ES256")
# Clocks of the provider and of this host may differ by this much.
LEEWAY_S = 30
# A header larger than this is no token Herald issues or accepts: refused unparsed.
MAX_TOKEN_BYTES = 8192


class TokenError(Exception):
    """The token is missing or cannot be trusted; `reason` is the ErrorInfo reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Caller:
    """Who a verified token says is calling, and what it may do."""

    subject: str
    scopes: frozenset[str]


class TokenVerifier:
    def __init__(self, jwks_file: Path, issuer: str, audience: str) -> None:
        self._jwks_file = jwks_file
        self._issuer = issuer
        self._audience = audience
        self._lock = threading.Lock()
        self._stamp = -1
        self._keys: dict[str, jwt.PyJWK] = {}
        self._keys_now()  # a missing or broken file fails at start, not at the first call

    def verify(self, authorization: str | None) -> Caller:
        """The caller a `Bearer <jwt>` header names; TokenError if there is none to trust."""
        if not authorization:
            raise TokenError("TOKEN_MISSING")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_BYTES:
            raise TokenError("TOKEN_INVALID")
        try:
            header = jwt.get_unverified_header(token)
            key = self._keys_now().get(str(header.get("kid")))
            algorithm = header.get("alg")
            if key is None or algorithm not in ALGORITHMS or algorithm != key.algorithm_name:
                raise TokenError("TOKEN_INVALID")
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY_S,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("TOKEN_EXPIRED") from None
        except jwt.PyJWTError:
            raise TokenError("TOKEN_INVALID") from None
        scopes = claims.get("scope", "")
        if not isinstance(scopes, str) or not isinstance(claims["sub"], str):
            raise TokenError("TOKEN_INVALID")
        return Caller(claims["sub"], frozenset(scopes.split()))

    def _keys_now(self) -> dict[str, jwt.PyJWK]:
        """The JWKS file's keys by kid, read again whenever the file has changed."""
        with self._lock:
            stamp = self._jwks_file.stat().st_mtime_ns
            if stamp == self._stamp:
                return self._keys
            try:
                keys = jwt.PyJWKSet.from_dict(json.loads(self._jwks_file.read_text())).keys
            except (OSError, ValueError, jwt.PyJWTError) as error:
                if self._stamp < 0:
                    raise
                # Caught half-written, say: the keys read before serve until the next change.
                logger.warning("token keys not reloaded: %s", error)
                return self._keys
            self._keys = {str(k.key_id): k for k in keys if k.key_id}
            self._stamp = stamp
            logger.info("token keys loaded: %d", len(self._keys))
            return self._keys
