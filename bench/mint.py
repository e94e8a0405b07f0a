"""``python -m bench.mint``: sign fresh access tokens and time ES256 verification in-process.

Run by the benchmark as a subprocess with the service's environment, so that it joins the
service's embedded PostgreSQL and signs with the service's own key, claims and user exactly
as a login would (``tokens.issue_access_token``). Every token is distinct (``jti``).

First it times, on tokens of its own, how many distinct tokens a second one core verifies with
PyJWT alone (``jwt.decode``: the reference of the "fresh tokens" target), with the service's
full check (``tokens.verify_access_token``), and how many of their signatures OpenSSL checks
with nothing else (the ECDSA algorithm's own rate). Then it writes
``--count`` tokens (or enough for ``--seconds`` at the PyJWT rate), one a line, to ``--out``,
and prints one JSON object with the figures. ES256 signing is fast (tens of thousands a second
with ``cryptography``), so one process is enough.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from auth_service import keys, users
from auth_service.db import open_database
from auth_service.key_encryption import load_key_ring
from auth_service.keys import KeySet
from auth_service.runtime import token_parameters
from auth_service.settings import Settings
from auth_service.tokens import REQUIRED_CLAIMS, issue_access_token, verify_access_token
from auth_service.types import User

# Tokens signed for timing verification, per second timed (more than one core verifies).
SAMPLE_PER_SECOND = 25_000
# Fresh tokens for a number of seconds: the HTTP rate stays below the in-process one (the
# same verification on the same single core, plus HTTP), so this margin is never used up.
MARGIN = 1.1


async def _load(settings: Settings, username: str) -> tuple[KeySet, User]:
    async with open_database(settings, migrate=False) as pool, pool.acquire() as conn:
        key_set = await keys.load_key_set(conn, load_key_ring(settings))
        user = await users.find_user(conn, username)
    if user is None:
        raise SystemExit(f"bench.mint: no user {username!r}")
    return key_set, user


def _made_up_user(model: User, number: int) -> User:
    """A user like ``model`` with an id, a name and a group of its own."""
    return replace(
        model, id=str(uuid.uuid4()), username=f"bench-{number}", groups=(f"team-{number}",)
    )


def _rate(tokens: list[str], seconds: float, verify: Callable[[str], object]) -> float:
    """Distinct tokens verified per second by ``verify`` on this one core."""
    done = 0
    started = time.perf_counter()
    while done < len(tokens) and time.perf_counter() - started < seconds:
        verify(tokens[done])
        done += 1
    return done / (time.perf_counter() - started)


def _signature_rate(tokens: list[str], seconds: float, public_key: Any) -> float:
    """ECDSA P-256 checks per second on this one core, of the tokens' signatures over their
    signing input, decoded beforehand: the cost of the algorithm itself (OpenSSL), with no
    JWT work at all."""
    checks = []
    for token in tokens:
        signing_input, _, signature = token.rpartition(".")
        raw = base64.urlsafe_b64decode(signature + "==")
        der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
        checks.append((der, signing_input.encode()))
    algorithm = ec.ECDSA(hashes.SHA256())
    done = 0
    started = time.perf_counter()
    while done < len(checks) and time.perf_counter() - started < seconds:
        der, message = checks[done]
        public_key.verify(der, message, algorithm)
        done += 1
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.mint")
    parser.add_argument("--username", required=True)
    parser.add_argument("--out", type=Path, required=True, help="the tokens, one a line")
    amount = parser.add_mutually_exclusive_group(required=True)
    amount.add_argument("--count", type=int, help="this many tokens")
    amount.add_argument(
        "--seconds",
        type=float,
        help="enough tokens for this many seconds at the PyJWT verification rate",
    )
    parser.add_argument("--verify-seconds", type=float, default=1.5, metavar="SECONDS")
    parser.add_argument(
        "--one-user-per-token",
        action="store_true",
        help="each token names a made-up user of its own (validate never reads the users "
        "table), so that no two cached entries have anything to share",
    )
    args = parser.parse_args()

    settings = Settings()
    params = token_parameters(settings)
    key_set, user = asyncio.run(_load(settings, args.username))
    session_id = secrets.token_hex(16)  # one made-up login: validate only checks revocations

    def mint(count: int) -> list[str]:
        return [
            issue_access_token(key_set, params, user, session_id=session_id)[0]
            for _ in range(count)
        ]

    def mint_for_many_users(count: int) -> list[str]:
        return [
            issue_access_token(
                key_set, params, _made_up_user(user, n), session_id=secrets.token_hex(16)
            )[0]
            for n in range(count)
        ]

    # Timed on tokens of their own: none of them is ever sent to the service.
    sample = mint(math.ceil(SAMPLE_PER_SECOND * args.verify_seconds))
    half = len(sample) // 2
    key = key_set.signing
    public_key = key.public_key
    pyjwt = _rate(
        sample[:half],
        args.verify_seconds,
        lambda token: jwt.decode(
            token,
            public_key,
            algorithms=[key.algorithm],
            audience=params.audience,
            issuer=params.issuer,
            leeway=params.leeway_seconds,
            options={"require": list(REQUIRED_CLAIMS)},
        ),
    )
    service = _rate(
        sample[half:], args.verify_seconds, lambda t: verify_access_token(t, key_set, params)
    )
    ecdsa = _signature_rate(sample, args.verify_seconds, public_key)

    count = args.count or math.ceil(max(pyjwt, service) * args.seconds * MARGIN)
    started = time.perf_counter()
    tokens = mint_for_many_users(count) if args.one_user_per_token else mint(count)
    signing_seconds = time.perf_counter() - started
    args.out.write_text("\n".join(tokens) + "\n", encoding="ascii")
    print(
        json.dumps(
            {
                "algorithm": key.algorithm,
                "tokens": count,
                "signing_per_second": round(count / signing_seconds, 1),
                "pyjwt_verifications_per_second": round(pyjwt, 1),
                "service_verifications_per_second": round(service, 1),
                "ecdsa_verifications_per_second": round(ecdsa, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
