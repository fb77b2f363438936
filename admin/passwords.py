"""Passwords: argon2id hashing off the event loop, and the policy a new password must meet.

argon2 is slow on purpose (tens of milliseconds and 64 MiB a hash): run inside a request
handler it stalls every other request of the admin, so a few clients guessing passwords
would take it down. Hashes are made and checked in a small thread pool (argon2-cffi releases
the GIL), and at most ``MAX_WAITING`` of them may wait for it: beyond that a sign-in is
refused with 503 at once rather than queued without end.

The policy: at least ``MIN_LENGTH`` characters, and a guessability score of at least
``MIN_SCORE`` (0 to 4) from zxcvbn, which knows common passwords, words, names, keyboard
patterns, repeats and dates, and is told the user's name so that it counts against them.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn

MIN_LENGTH = 12
MIN_SCORE = 3  # zxcvbn: "safely unguessable: moderate protection from offline attacks"
ESTIMATED_LENGTH = 72  # zxcvbn's own bound: it is quadratic in the length
THREADS = 2  # argon2 is CPU-bound: more threads than cores only queue inside the kernel
MAX_WAITING = 32

_hasher = PasswordHasher()
_pool = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="refract-argon2")
# A hash to verify against when the user does not exist, so that the answer takes as long
# as for a wrong password and does not reveal which names exist.
DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


class Busy(Exception):
    """Too many hashes are waiting for the pool already."""


class _Load:
    """How many hashes are in the pool or waiting for it (one event loop updates it)."""

    in_flight = 0


def in_flight() -> int:
    return _Load.in_flight


T = TypeVar("T")


async def _off_the_loop(work: Callable[[], T]) -> T:
    if _Load.in_flight >= THREADS + MAX_WAITING:
        raise Busy
    _Load.in_flight += 1
    try:
        return await asyncio.get_running_loop().run_in_executor(_pool, work)
    finally:
        _Load.in_flight -= 1


async def hash_password(password: str) -> str:
    return await _off_the_loop(lambda: _hasher.hash(password))


async def verify(hashed: str, password: str) -> bool:
    """Whether ``password`` matches ``hashed`` (a malformed hash matches nothing)."""

    def check() -> bool:
        try:
            return _hasher.verify(hashed, password)
        except (VerificationError, InvalidHashError):
            return False

    return await _off_the_loop(check)


def needs_rehash(hashed: str) -> bool:
    """Made with weaker parameters than today's defaults: hash it again at the next sign-in."""
    return _hasher.check_needs_rehash(hashed)


def policy_problem(password: str, user: str) -> str | None:
    """Why ``password`` may not be ``user``'s, with a hint; None when it may."""
    if len(password) < MIN_LENGTH:
        return f"needs at least {MIN_LENGTH} characters (a few unrelated words make a good one)"
    estimate = zxcvbn(password[:ESTIMATED_LENGTH], user_inputs=[user])
    if estimate["score"] >= MIN_SCORE:
        return None
    feedback = estimate["feedback"]
    reasons = [feedback["warning"], *feedback["suggestions"]]
    said = " ".join(reason for reason in reasons if reason)
    return f"too easy to guess{': ' + said if said else ''}"
