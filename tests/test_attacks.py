"""Forged, confused and malformed tokens (RFC 8725, OWASP ASVS 5 ch. 9): every one gets 401.

Each case builds the attack token against the running service's real keys. A server standing
by for ``jku``/``x5u`` URLs proves that no request is ever made because of a token header.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from auth_service.app import AuthServiceApp

from .idp import StandInProvider

VALIDATE = "/api/v1/auth/validate"
# The order n of P-256 (FIPS 186-4 D.1.2.3).
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def b64(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def segment(value: dict[str, Any]) -> str:
    return b64(json.dumps(value))


class Attack:
    """What an attacker knows: our public key, our kid, and a token of ours to tamper with."""

    def __init__(self, app: AuthServiceApp, trap_url: str) -> None:
        assert app.runtime is not None
        self.key = app.runtime.keys.signing
        self.kid = self.key.kid
        self.trap_url = trap_url
        now = int(time.time())
        self.claims: dict[str, Any] = {
            "iss": "http://auth.test",
            "aud": "auth-service",
            "sub": "attacker",
            "jti": "j1",
            "sid": "s1",
            "preferred_username": "admin",
            "groups": ["admins"],
            "iat": now,
            "exp": now + 300,
        }

    def header(self, **changes: Any) -> dict[str, Any]:
        return {"alg": "ES256", "kid": self.kid, "typ": "at+jwt", **changes}

    def signed(
        self, header: dict[str, Any], payload: str | None = None, *, high_s: bool = False
    ) -> str:
        """Header and payload signed with our real private key (the attacker cannot do this;
        used to show that structural checks refuse even validly signed oddities), in the
        low-S form we sign with, or its high-S twin (an equally valid ECDSA signature)."""
        signing_input = f"{segment(header)}.{payload or segment(self.claims)}"
        der = self.key.private_key.sign(signing_input.encode(), ec.ECDSA(_sha256()))
        r, s = _decode_dss(der)
        if (s > P256_ORDER // 2) != high_s:
            s = P256_ORDER - s
        return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def hmac_with(self, secret: bytes, alg: str = "HS256") -> str:
        signing_input = f"{segment(self.header(alg=alg))}.{segment(self.claims)}"
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
        return f"{signing_input}.{b64(hmac.new(secret, signing_input.encode(), digest).digest())}"


def _sha256() -> Any:
    from cryptography.hazmat.primitives import hashes

    return hashes.SHA256()


def _decode_dss(der: bytes) -> tuple[int, int]:
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    return decode_dss_signature(der)


def public_pem(a: Attack) -> bytes:
    return a.key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_der(a: Attack) -> bytes:
    return a.key.public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


ATTACKS: dict[str, Callable[[Attack], str]] = {
    "alg none": lambda a: f"{segment(a.header(alg='none'))}.{segment(a.claims)}.",
    "alg None": lambda a: f"{segment(a.header(alg='None'))}.{segment(a.claims)}.",
    "alg NONE with a signature": lambda a: (
        f"{segment(a.header(alg='NONE'))}.{segment(a.claims)}.AAAA"
    ),
    "HS256 keyed with our public key (PEM)": lambda a: a.hmac_with(public_pem(a)),
    "HS256 keyed with our public key (DER)": lambda a: a.hmac_with(public_der(a)),
    "HS256 keyed with our public key (JWK)": lambda a: a.hmac_with(
        json.dumps(a.key.public_jwk).encode()
    ),
    "HS512 keyed with our public key (PEM)": lambda a: a.hmac_with(public_pem(a), "HS512"),
    "all-zero ECDSA signature": lambda a: (
        f"{segment(a.header())}.{segment(a.claims)}.{b64(bytes(64))}"
    ),
    "DER-encoded ECDSA signature": lambda a: (
        f"{segment(a.header())}.{segment(a.claims)}."
        + b64(
            a.key.private_key.sign(
                f"{segment(a.header())}.{segment(a.claims)}".encode(), ec.ECDSA(_sha256())
            )
        )
    ),
    "high-S twin of a valid signature": lambda a: a.signed(a.header(), high_s=True),
    "no session id (validly signed)": lambda a: a.signed(
        a.header(), segment({k: v for k, v in a.claims.items() if k != "sid"})
    ),
    "empty session id (validly signed)": lambda a: a.signed(
        a.header(), segment({**a.claims, "sid": ""})
    ),
    "30-day lifetime (validly signed)": lambda a: a.signed(
        a.header(), segment({**a.claims, "exp": a.claims["iat"] + 30 * 86_400})
    ),
    "swapped payload": lambda a: ".".join(
        [
            a.signed(a.header()).split(".")[0],
            segment({**a.claims, "preferred_username": "root"}),
            a.signed(a.header()).split(".")[2],
        ]
    ),
    "duplicate claim (validly signed)": lambda a: a.signed(
        a.header(),
        b64(json.dumps(a.claims)[:-1] + ', "preferred_username": "root"}'),
    ),
    "duplicate header parameter (validly signed)": lambda a: (
        b64(json.dumps(a.header())[:-1] + ', "alg": "none"}')
        + "."
        + a.signed(a.header()).split(".", 1)[1]
    ),
    "signed by another issuer's key": lambda a: jwt.encode(
        a.claims,
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        algorithm="RS256",
        headers={"kid": a.kid, "typ": "at+jwt"},
    ),
    "signed by a fresh EC key with our kid": lambda a: jwt.encode(
        a.claims,
        ec.generate_private_key(ec.SECP256R1()),
        algorithm="ES256",
        headers={"kid": a.kid, "typ": "at+jwt"},
    ),
    "embedded jwk of the attacker": lambda a: _self_signed(a, "jwk"),
    "jku pointing at the attacker": lambda a: _self_signed(a, "jku"),
    "x5u pointing at the attacker": lambda a: _self_signed(a, "x5u"),
    "x5c chain of the attacker": lambda a: _self_signed(a, "x5c"),
    "unknown crit (validly signed)": lambda a: a.signed(
        a.header(crit=["exp-ext"], **{"exp-ext": 1})
    ),
    "nested token (cty JWT, validly signed)": lambda a: a.signed(a.header(cty="JWT")),
    "ID token typ JWT (validly signed)": lambda a: a.signed(a.header(typ="JWT")),
    "no typ (validly signed)": lambda a: a.signed({"alg": "ES256", "kid": a.kid}),
    "kid path traversal": lambda a: a.signed(a.header(kid="../../../../dev/null")),
    "kid SQL injection": lambda a: a.signed(a.header(kid="x' OR '1'='1")),
    "kid as a number": lambda a: a.signed(a.header(kid=12345)),
    "exp as a string (validly signed)": lambda a: a.signed(
        a.header(), segment({**a.claims, "exp": str(a.claims["exp"])})
    ),
    "aud as a list (validly signed)": lambda a: a.signed(
        a.header(), segment({**a.claims, "aud": ["auth-service", "other"]})
    ),
    "groups as a string (validly signed)": lambda a: a.signed(
        a.header(), segment({**a.claims, "groups": "admins"})
    ),
    "sub missing (validly signed)": lambda a: a.signed(
        a.header(), segment({k: v for k, v in a.claims.items() if k != "sub"})
    ),
    "payload not an object (validly signed)": lambda a: a.signed(a.header(), b64("[1, 2]")),
    "four segments": lambda a: a.signed(a.header()) + ".AAAA",
    "two segments": lambda a: ".".join(a.signed(a.header()).split(".")[:2]),
    "opaque refresh token as access token": lambda a: "k3J9n0vQ2rWdX8yZ1aB4cD6eF7gH9iJ0kL2mN4oP5qR",
}


def _self_signed(a: Attack, how: str) -> str:
    attacker = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(attacker.public_key()))
    extra: dict[str, Any] = {
        "jwk": {"jwk": jwk},
        "jku": {"jku": a.trap_url + "/jwks.json"},
        "x5u": {"x5u": a.trap_url + "/cert.pem"},
        "x5c": {"x5c": ["MIIBfake"]},
    }[how]
    return jwt.encode(
        a.claims, attacker, algorithm="ES256", headers={"kid": a.kid, "typ": "at+jwt", **extra}
    )


class Trap:
    """Counts every request it receives: there must be none."""

    def __init__(self) -> None:
        self.hits = 0
        trap = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                trap.hits += 1
                self.send_error(404)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def trap() -> Iterator[Trap]:
    t = Trap()
    yield t
    t.server.shutdown()
    t.server.server_close()


@pytest.mark.parametrize("name", list(ATTACKS))
async def test_attack_tokens_are_refused(
    app: AuthServiceApp, client: httpx.AsyncClient, trap: Trap, name: str
) -> None:
    token = ATTACKS[name](Attack(app, trap.url))
    response = await client.get(VALIDATE, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, name
    assert response.json()["error"] in {"invalid_token", "malformed_header"}
    assert "x-auth-user" not in response.headers
    assert trap.hits == 0  # no request because of jku, x5u or anything else in a token


async def test_the_untampered_control_token_is_accepted(
    app: AuthServiceApp, client: httpx.AsyncClient, trap: Trap
) -> None:
    # The same construction without the attack passes: the refusals above are not accidental.
    attack = Attack(app, trap.url)
    response = await client.get(
        VALIDATE, headers={"Authorization": f"Bearer {attack.signed(attack.header())}"}
    )
    assert response.status_code == 200
    assert response.headers["x-auth-user"] == "admin"


@pytest.mark.parametrize(
    "value",
    [
        "Bearer",
        "Bearer  ",
        "Bearer abc def",
        "Bearer abc\tdef",
        "Bearer ab\u00e9c",
        "Bearer abc,def",
        'Bearer "abc"',
        "Token abc.def.ghi",
        "Basic YWxhZGRpbjpvcGVuc2VzYW1l",
        "Bearerabc.def.ghi",
    ],
)
async def test_malformed_authorization_values_are_refused(
    client: httpx.AsyncClient, value: str
) -> None:
    response = await client.get(VALIDATE, headers={"Authorization": value.encode("utf-8")})
    assert response.status_code == 401
    assert response.json()["error"] == "malformed_header"


async def test_an_external_issuers_key_cannot_sign_for_us(
    make_settings: Callable[..., Any], tmp_path: Any
) -> None:
    from asgi_lifespan import LifespanManager

    from auth_service.app import create_app

    provider = StandInProvider()
    try:
        config = tmp_path / "auth.toml"
        config.write_text(f'[[issuers]]\nissuer = "{provider.issuer}"\naudience = "api://orders"\n')
        application = create_app(make_settings(config=config), configure_logs=False)
        async with LifespanManager(application, startup_timeout=30):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://auth.test") as c:
                # The provider's real key, our issuer and audience: still refused.
                forged = provider.token(iss="http://auth.test", aud="auth-service")
                response = await c.get(VALIDATE, headers={"Authorization": f"Bearer {forged}"})
                assert response.status_code == 401
                # And its key does not verify a token claiming another configured issuer's kid.
                genuine = await c.get(
                    VALIDATE, headers={"Authorization": f"Bearer {provider.token()}"}
                )
                assert genuine.status_code == 200
    finally:
        provider.close()
