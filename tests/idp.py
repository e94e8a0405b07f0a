"""A stand-in OpenID provider: serves a discovery document and a JWKS, and signs tokens.

The only fake in the suite: an external identity provider is a third party we cannot run.
It counts the JWKS fetches and can be switched off, to test caching, cool-downs and outages.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa


class StandInProvider:
    """An issuer at ``http://127.0.0.1:PORT/realms/test`` with rotating RSA keys."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.extra_jwks: list[dict[str, Any]] = []
        self.jwks_fetches = 0
        self.available = True
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if not provider.available:
                    self.send_error(503)
                    return
                if self.path.endswith("/.well-known/openid-configuration"):
                    body = {"issuer": provider.issuer, "jwks_uri": provider.issuer + "/certs"}
                elif self.path.endswith("/certs"):
                    provider.jwks_fetches += 1
                    body = provider.jwks()
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self._server.server_address[1]}/realms/test"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.rotate()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def rotate(self) -> str:
        """Add a new signing key (the old ones stay published); returns its kid."""
        kid = f"key-{len(self.keys) + 1}"
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return kid

    @property
    def current_kid(self) -> str:
        return list(self.keys)[-1]

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, key in self.keys.items():
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": keys + self.extra_jwks}

    def token(
        self,
        *,
        kid: str | None = None,
        key: Any = None,
        algorithm: str = "RS256",
        typ: str | None = "JWT",
        **claims: Any,
    ) -> str:
        """A signed token; ``typ=None`` leaves ``typ`` out of the header, a claim given as
        None leaves that claim out."""
        now = int(time.time())
        payload = {
            "iss": self.issuer,
            "aud": "api://orders",
            "sub": "user-123",
            "preferred_username": "carol",
            "groups": ["engineering", "oncall"],
            "scope": "orders:read orders:write",
            "iat": now,
            "exp": now + 300,
        }
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        kid = kid or self.current_kid
        return jwt.encode(
            payload,
            key or self.keys.get(kid) or self.keys[self.current_kid],
            algorithm=algorithm,
            headers={"kid": kid, "typ": typ},
        )


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())
