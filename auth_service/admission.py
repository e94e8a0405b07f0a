"""The admission queue in front of the password-hashing threads: bounded, and failing fast.

argon2id costs a few hundred milliseconds of a core. A login flood that queued without bound
would make every attempt wait longer than any client does, and keep the hashing threads busy
with answers nobody reads. So a login is admitted only when a thread is free or its expected
wait (its place in the queue times the recent time a hash took) is within ``max_wait``; any
other login is refused at once with ``LoginOverloaded`` and a ``Retry-After`` of the time the
queue needs to drain. An admitted login that still waits ``max_wait`` (the hashes got slower
meanwhile) is refused then: nobody waits longer.

A hashing thread also gives way to a busy event loop. Nice levels rank the threads on a
core, but a hash running on another core still slows validate: argon2id streams through
64 MiB, and the cores share their cache and memory bandwidth (measured: nice 10 and nice 19
both left validate 0.76-0.77x of its rate beside a flood, the hash running all the time on
the second core). So after each hash its thread rests, before taking the next, for the
hash's time times the share of that time the event loop spent on the CPU, times
``yield_factor``: with the loop fully busy and a factor of 1, hashing runs half the time;
with the loop idle, it does not rest at all. The rest counts in the estimate of a hash's
time, so admission refuses what the slower pace cannot serve in time.

The queue lives in one process's event loop: with ``--workers N`` each worker has its own
threads and queue.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TypeVar

from .errors import LoginOverloaded
from .metrics import LOGIN_ATTEMPTS

T = TypeVar("T")

_SMOOTHING = 0.2  # weight of the latest hash in the running estimate of a hash's time


class HashingQueue:
    """At most ``threads`` hashes at once, at most ``size`` waiting, none waiting past
    ``max_wait`` seconds. ``hash_seconds`` is the first estimate of one hash's time;
    ``yield_factor`` how long a thread rests after a hash that ran beside a busy event loop
    (0: never)."""

    def __init__(
        self,
        threads: int,
        size: int,
        max_wait: float,
        hash_seconds: float,
        yield_factor: float = 0.0,
    ) -> None:
        self._threads = threads
        self._yield_factor = yield_factor
        self._size = size
        self._max_wait = max_wait
        self._slots = asyncio.Semaphore(threads)
        self._waiting = 0
        self._running = 0
        self._hash_seconds = hash_seconds
        self._refused = LOGIN_ATTEMPTS.labels("overloaded")

    @property
    def waiting(self) -> int:
        """Logins waiting for a hashing thread right now (the queue's depth)."""
        return self._waiting

    @property
    def running(self) -> int:
        """Threads taken right now: hashing, or resting after a hash."""
        return self._running

    @property
    def hash_seconds(self) -> float:
        """The running estimate of one hash's time, in seconds (wall clock, under load)."""
        return self._hash_seconds

    def check_room(self) -> None:
        """Raise ``LoginOverloaded`` now if a login arriving now would not be admitted: a
        cheap test to run before any other work of the attempt."""
        if self._running + self._waiting < self._threads:
            return
        place = self._waiting + 1
        if place > self._size or self._expected_wait(place) > self._max_wait:
            self._refuse()

    async def run(self, executor: Executor, work: Callable[..., T], *args: object) -> T:
        """``work(*args)`` in ``executor`` once admitted; ``LoginOverloaded`` otherwise."""
        self.check_room()
        self._waiting += 1
        try:
            async with asyncio.timeout(self._max_wait):
                await self._slots.acquire()
        except TimeoutError:
            self._refuse()
        finally:
            self._waiting -= 1
        self._running += 1
        started, loop_cpu = time.monotonic(), time.thread_time()
        future = asyncio.get_running_loop().run_in_executor(executor, work, *args)
        # The slot is given back when the thread is done (and rested), not when the request
        # is: a cancelled request must not let another hash start beside one still running.
        future.add_done_callback(lambda _: self._finished(started, loop_cpu))
        return await asyncio.shield(future)

    def _finished(self, started: float, loop_cpu: float) -> None:
        """On the event loop's thread, when a hash is done: so ``thread_time`` is the loop's."""
        elapsed = time.monotonic() - started
        busy = min(1.0, (time.thread_time() - loop_cpu) / elapsed) if elapsed > 0 else 0.0
        rest = elapsed * busy * self._yield_factor
        self._hash_seconds += _SMOOTHING * (elapsed + rest - self._hash_seconds)
        if rest > 0:
            asyncio.get_running_loop().call_later(rest, self._free)
        else:
            self._free()

    def _free(self) -> None:
        self._running -= 1
        self._slots.release()

    def _expected_wait(self, place: int) -> float:
        """Seconds until the login at ``place`` in the queue starts (1: next)."""
        return math.ceil(place / self._threads) * self._hash_seconds

    def _refuse(self) -> None:
        self._refused.inc()
        retry_after = max(1, math.ceil(self._expected_wait(self._waiting + 1)))
        raise LoginOverloaded(retry_after)
