"""Password hashing with argon2id, run off the event loop in a bounded thread pool.

Parameters are above OWASP's minimum for argon2id (19 MiB, t=2, p=1): 64 MiB, t=3, p=1
(argon2-cffi's RFC 9106 "low memory" profile). argon2-cffi releases the GIL while hashing,
so the threads really run in parallel with the event loop.
"""

from __future__ import annotations

import asyncio
import secrets
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from importlib import resources

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from .errors import InvalidPassword

MIN_PASSWORD_LENGTH = 8  # characters; 15 or more is recommended (README)
MAX_PASSWORD_LENGTH = 1024  # bytes of UTF-8: longer input is refused before hashing

_HASHER = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=1)


@cache
def _common_passwords() -> frozenset[str]:
    text = resources.files("auth_service").joinpath("data", "common-passwords.txt").read_text()
    return frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def check_password_acceptable(password: str) -> None:
    """Refuse storable-but-weak passwords (NIST SP 800-63B style: a minimum length, no
    composition rules, and not one of the commonly used passwords) and unstorable ones."""
    check_password_storable(password)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidPassword(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if password.lower() in _common_passwords():
        raise InvalidPassword("the password is too common; choose another")


def check_password_storable(password: str) -> None:
    """Refuse what cannot be hashed: nothing at all, or more than the byte limit."""
    if not password:
        raise InvalidPassword("the password is empty")
    if len(password.encode("utf-8")) > MAX_PASSWORD_LENGTH:
        raise InvalidPassword(f"the password is longer than {MAX_PASSWORD_LENGTH} bytes")


def hash_password(password: str) -> str:
    """An argon2id PHC string for ``password`` (blocking: about 50 ms of CPU)."""
    check_password_storable(password)
    return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches; False for a mismatch or an unreadable hash."""
    if len(password.encode("utf-8")) > MAX_PASSWORD_LENGTH:
        return False
    try:
        return _HASHER.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


class PasswordWorkers:
    """A bounded pool of threads for hashing, with a dummy hash for unknown users.

    Verifying an unknown user's attempt against the dummy hash makes it cost the same time
    as a known user's, so response times do not reveal which names exist.
    """

    def __init__(self, workers: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="argon2")
        self._dummy_hash = _HASHER.hash(secrets.token_urlsafe(24))

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Verify in a worker thread; ``None`` as hash means "unknown user" (always False)."""
        loop = asyncio.get_running_loop()
        if password_hash is None:
            await loop.run_in_executor(self._executor, verify_password, self._dummy_hash, password)
            return False
        return await loop.run_in_executor(self._executor, verify_password, password_hash, password)

    async def hash(self, password: str) -> str:
        """Hash in a worker thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, hash_password, password)

    def close(self) -> None:
        """Stop the threads (pending work finishes first)."""
        self._executor.shutdown(wait=True, cancel_futures=True)
