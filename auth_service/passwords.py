"""Password hashing with argon2id, run off the event loop in a few low-priority threads.

Parameters are above OWASP's minimum for argon2id (19 MiB, t=2, p=1): 64 MiB, t=3, p=1
(argon2-cffi's RFC 9106 "low memory" profile). argon2-cffi releases the GIL while hashing,
so the threads really run in parallel with the event loop.
"""

from __future__ import annotations

import os
import secrets
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from importlib import resources

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from .admission import HashingQueue
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
    """A few low-priority threads for hashing behind a bounded admission queue, with a dummy
    hash for unknown users.

    Verifying an unknown user's attempt against the dummy hash makes it cost the same time
    as a known user's, so response times do not reveal which names exist. The threads run at
    a lower priority (``nice`` levels below the process's): when validate and the hashes want
    the same cores, the scheduler serves validate first, and the hashes get whatever is left
    (all of it when validate is idle). ``queue`` refuses the logins they cannot serve soon.
    """

    def __init__(
        self,
        workers: int,
        *,
        queue_size: int = 16,
        max_wait: float = 3.0,
        nice: int = 0,
        yield_factor: float = 0.0,
    ) -> None:
        self._executor = ThreadPoolExecutor(
            max_workers=workers,
            thread_name_prefix="argon2",
            initializer=_lower_priority,
            initargs=(nice,),
        )
        started = time.monotonic()
        self._dummy_hash = _HASHER.hash(secrets.token_urlsafe(24))
        self.queue = HashingQueue(
            workers, queue_size, max_wait, time.monotonic() - started, yield_factor
        )

    def check_room(self) -> None:
        """``LoginOverloaded`` at once when a login arriving now would be refused."""
        self.queue.check_room()

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Verify in a worker thread; ``None`` as hash means "unknown user" (always False).
        ``LoginOverloaded`` when the queue refuses."""
        if password_hash is None:
            await self.queue.run(self._executor, verify_password, self._dummy_hash, password)
            return False
        return await self.queue.run(self._executor, verify_password, password_hash, password)

    async def hash(self, password: str) -> str:
        """Hash in a worker thread (``LoginOverloaded`` when the queue refuses)."""
        return await self.queue.run(self._executor, hash_password, password)

    def close(self) -> None:
        """Stop the threads (pending work finishes first)."""
        self._executor.shutdown(wait=True, cancel_futures=True)


def _lower_priority(increment: int) -> None:
    """Lower the calling hashing thread's priority by ``increment`` nice levels (Linux keeps
    a nice value per thread; elsewhere it is the process's, so the threads keep it)."""
    if increment and sys.platform == "linux":
        thread = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(19, current + increment))
