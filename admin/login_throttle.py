"""Password guessing made slow: failures counted per user name and per client address.

Each attempt adds one to both counters (``keyspace.admin_login_failures``), which are
forgotten ``admin.login_lockout_minutes`` after the latest attempt; a right password takes
its attempt back. After ``login_free_failures`` failures, the next attempt must wait 1 s
after the latest, then 2, 4, 8 ... (capped at the lockout window); at
``login_lockout_failures`` for a name (``login_address_lockout_failures`` for an address) the
name or address is locked for the whole window. An attempt too early is answered 429 with
``Retry-After`` before any password is checked, so it costs no argon2 time, and it does not
count.

A right password clears the user's counter, not the address's: one valid account must not
let its holder go on guessing others' passwords from the same address.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis.asyncio as redis

from refract.rules import keyspace
from refract.rules.config import AdminConfig


@dataclass(frozen=True)
class Subject:
    """What failures are counted against: a user name or a client address."""

    kind: str  # "user" or "address"
    name: str
    lockout_failures: int

    @property
    def key(self) -> str:
        return keyspace.admin_login_failures(self.kind, self.name)


# Checks every subject and, when none must wait, counts the attempt against all of them, in
# one step: concurrent guesses cannot all pass the check before any of them is counted.
# KEYS: the subjects' keys; ARGV: now, window (s), free failures, each subject's lockout.
_ATTEMPT = """
local now, window, free = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local wait = 0
for i, key in ipairs(KEYS) do
  local failures = tonumber(redis.call('HGET', key, 'failures') or '0')
  local latest = tonumber(redis.call('HGET', key, 'latest') or '0')
  local pause = 0
  if failures >= tonumber(ARGV[3 + i]) then
    pause = window
  elseif failures >= free then
    pause = math.min(2 ^ (failures - free), window)
  end
  if pause > 0 then
    -- only a pause makes an attempt wait: a concurrent attempt's later clock must not
    wait = math.max(wait, latest + pause - now)
  end
end
if wait > 0 then
  return math.ceil(wait)
end
for _, key in ipairs(KEYS) do
  redis.call('HINCRBY', key, 'failures', 1)
  redis.call('HSET', key, 'latest', ARGV[1])
  redis.call('EXPIRE', key, math.ceil(window))
end
return 0
"""


@dataclass(frozen=True)
class Throttle:
    free_failures: int
    window_s: float

    @classmethod
    def of(cls, config: AdminConfig) -> Throttle:
        return cls(config.login_free_failures, config.login_lockout_minutes * 60.0)

    @staticmethod
    def subjects(config: AdminConfig, user: str, address: str) -> tuple[Subject, ...]:
        return (
            Subject("user", user, config.login_lockout_failures),
            Subject("address", address or "unknown", config.login_address_lockout_failures),
        )

    async def attempt(
        self, client: redis.Redis, subjects: tuple[Subject, ...], now: float | None = None
    ) -> int:
        """0 when the attempt may go ahead (it is then counted as a failure until
        ``succeeded``), else the whole seconds to wait (the attempt is not counted)."""
        arguments = [
            time.time() if now is None else now,
            self.window_s,
            self.free_failures,
            *(subject.lockout_failures for subject in subjects),
        ]
        keys = [subject.key for subject in subjects]
        wait = await client.eval(_ATTEMPT, len(keys), *keys, *arguments)
        return int(wait)

    @staticmethod
    async def succeeded(client: redis.Redis, subjects: tuple[Subject, ...]) -> None:
        """The password was right: the user's failures are forgotten and the attempt no
        longer counts against the address."""
        async with client.pipeline(transaction=True) as pipe:
            for subject in subjects:
                if subject.kind == "user":
                    pipe.delete(subject.key)
                else:
                    pipe.hincrby(subject.key, "failures", -1)
            await pipe.execute()
