"""Trimming a stream to what some consumer group still needs.

An entry is acknowledged only once the worker applied and archived it, or dead-lettered it
(analytics/consumer.py), so past that point the archive and ``refract rebuild`` are its
history and Redis need not keep it. After its rounds a consumer trims its shard up to the
oldest entry any group still needs: the oldest one pending (delivered, not acknowledged) in
a group, or else the first after what the group was last delivered. What nobody read yet and
what is pending stay, whatever their age; a stream with no group yet is left alone. The
stream then holds the backlog, not ``retention_days`` of history (the proxies' age trim at
XADD stays as the outer bound).

One script, so no group can move between reading its position and trimming. Trimming is
exact (no ``~``): it happens at most once a ``TRIM_EVERY_S`` per shard, and once more when
the consumer has caught up, so an idle stream is left holding nothing it does not need.
"""

from __future__ import annotations

import time

import redis.asyncio as redis

TRIM_EVERY_S = 1.0

# XINFO GROUPS answers each group as a flat list of field, value; XPENDING's summary form
# answers {count, smallest id, greatest id, consumers}.
_TRIM = """
local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[1])
if not ok or #groups == 0 then return 0 end
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local keep_ms, keep_seq, keep_id = nil, nil, nil
for _, group in ipairs(groups) do
  local info = {}
  for i = 1, #group, 2 do info[group[i]] = group[i + 1] end
  local needed
  if tonumber(info['pending']) > 0 then
    needed = redis.call('XPENDING', KEYS[1], info['name'])[2]
  else
    local ms, seq = parse(info['last-delivered-id'])
    -- the entry after the last delivered one; a sequence too large to count keeps that one
    if seq < 1e12 then needed = string.match(info['last-delivered-id'], '^%d+') .. '-' .. (seq + 1)
    else needed = info['last-delivered-id'] end
  end
  local ms, seq = parse(needed)
  if keep_ms == nil or ms < keep_ms or (ms == keep_ms and seq < keep_seq) then
    keep_ms, keep_seq, keep_id = ms, seq, needed
  end
end
return redis.call('XTRIM', KEYS[1], 'MINID', keep_id)
"""


class StreamTrimmer:
    """Trims one stream shard after its consumer's rounds."""

    def __init__(self, client: redis.Redis, stream: str, every_s: float = TRIM_EVERY_S) -> None:
        self.stream = stream
        self.every_s = every_s
        self.trimmed = 0  # entries removed so far, for tests and logs
        self._script = client.register_script(_TRIM)
        self._last = 0.0
        self._behind = False  # processed entries since the last trim

    async def after_round(self, handled: int) -> None:
        """Trim if the consumer processed entries since the last trim, and either a trim is
        due or it has just caught up (``handled`` is 0: nothing more to read)."""
        self._behind = self._behind or handled > 0
        now = time.monotonic()
        if self._behind and (handled == 0 or now - self._last >= self.every_s):
            await self.trim()
            self._last = now

    async def trim(self) -> int:
        """Remove every entry no group needs; how many."""
        removed = int(await self._script(keys=[self.stream]))
        self.trimmed += removed
        self._behind = False
        return removed
