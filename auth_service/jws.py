"""Compact JWS (RFC 7515) for our own tokens: signing, one strict parse, then the ES256 check.

PyJWT verifies the tokens of external issuers. Our own tokens are signed and checked here, on
every cache miss of validate, because PyJWT 2.15 checks the base64url alphabet one
character at a time in Python, which costs about as much as OpenSSL's signature check; and
our duplicate-name rule needs a parse of its own anyway (``bench/RESULTS.md`` has the profile).
The tests hold this module to PyJWT's answers on the same tokens.

- Every segment must be unpadded base64url; the signature must be the one canonical encoding
  of 64 bytes, so one signature cannot be written as several tokens.
- ECDSA signatures are malleable: if ``(r, s)`` verifies, so does ``(r, n - s)``. We sign with
  the low ``s`` (at most n/2) and refuse the high one, so one token has one signature (a
  refusal PyJWT does not make).
- Header and payload must be UTF-8 JSON objects without repeated names (parsers disagree on
  which of two values wins) and without NaN or Infinity.
- The payload is parsed only once the signature holds.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from .errors import InvalidToken

_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
# 64 bytes are 86 characters whose last one carries 2 bits and 4 zero bits.
_ES256_SIGNATURE = re.compile(r"[A-Za-z0-9_-]{85}[AQgw]")
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
# The order of P-256's base point (FIPS 186-4, D.1.2.3); a low-S signature has s <= n // 2.
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_P256_HALF_ORDER = _P256_ORDER // 2
_MALFORMED = "the token is not a well-formed JWT"


def sign_es256(
    header: dict[str, Any], claims: dict[str, Any], key: ec.EllipticCurvePrivateKey
) -> str:
    """A compact JWS of ``claims`` under ``header`` (which names ``alg: ES256``), with the
    low-S signature: the only one ``verified_payload`` accepts."""
    if header.get("alg") != "ES256" or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("ES256 signs with a P-256 key and says so in its header")
    signing_input = f"{_encode_json(header)}.{_encode_json(claims)}"
    r, s = decode_dss_signature(key.sign(signing_input.encode("ascii"), _ECDSA_SHA256))
    if s > _P256_HALF_ORDER:
        s = _P256_ORDER - s
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{signing_input}.{_encode(signature)}"


class CompactJWS:
    """A token split into its three segments, with its header decoded."""

    __slots__ = ("_payload", "_signature", "_signing_input", "header")

    def __init__(self, token: str) -> None:
        if token.count(".") != 2:
            raise InvalidToken(_MALFORMED)
        header, payload, signature = token.split(".")
        if not _SEGMENT.fullmatch(header) or not _SEGMENT.fullmatch(payload):
            raise InvalidToken(_MALFORMED)
        self.header = _json_object(header)
        self._payload = payload
        self._signature = signature
        self._signing_input = token[: len(header) + 1 + len(payload)]

    def verified_payload(self, algorithm: str, public_key: Any) -> dict[str, Any]:
        """The payload, once the signature holds for ``public_key`` under ``algorithm``."""
        if (
            algorithm != "ES256"
            or not isinstance(public_key, ec.EllipticCurvePublicKey)
            or not isinstance(public_key.curve, ec.SECP256R1)  # ES256 is P-256 (RFC 7518)
        ):
            raise InvalidToken("the token was not signed by a key we know")
        if not _ES256_SIGNATURE.fullmatch(self._signature):
            raise InvalidToken("the token's signature is malformed")
        raw = _decode(self._signature)
        r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
        if s > _P256_HALF_ORDER:  # (r, n - s) of a signature of ours: another spelling
            raise InvalidToken("the token's signature is not in its canonical (low-S) form")
        der = encode_dss_signature(r, s)
        try:
            public_key.verify(der, self._signing_input.encode("ascii"), _ECDSA_SHA256)
        except InvalidSignature:
            raise InvalidToken("the token failed verification: InvalidSignatureError") from None
        return _json_object(self._payload)

    def unverified_payload(self) -> dict[str, Any]:
        """The payload without any check of the signature: only to choose who verifies."""
        return _json_object(self._payload)


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _encode_json(value: dict[str, Any]) -> str:
    return _encode(json.dumps(value, separators=(",", ":"), allow_nan=False).encode("utf-8"))


def _decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _json_object(segment: str) -> dict[str, Any]:
    try:
        value = json.loads(
            _decode(segment).decode("utf-8"),
            object_pairs_hook=_no_repeated_names,
            parse_constant=_no_constants,
        )
    except InvalidToken:
        raise
    except (ValueError, RecursionError) as e:  # binascii.Error and Unicode errors included
        raise InvalidToken(_MALFORMED) from e
    if not isinstance(value, dict):
        raise InvalidToken(_MALFORMED)
    return value


def _no_repeated_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        raise InvalidToken("the token repeats a header parameter or claim")
    return value


def _no_constants(name: str) -> Any:
    raise InvalidToken(f"the token has a {name} number")
