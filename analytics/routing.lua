-- Lead routing's decision (analytics/routing.py): read the reps' counts of the day, pick the
-- one with the fewest leads under their capacity (ties: the first, in file order), count the
-- lead and record it, all in one step, so that workers routing at once never both see the
-- same counts and the spread between eligible reps stays at most 1.
--
-- KEYS: 1 the day's counts (rep -> leads), 2 the lead, 3 leads by time, 4 leads waiting
-- ARGV: 1 mode ("route": a new lead; "reroute": one whose SLA ran out), 2 lead id, 3 now,
--       4 SLA deadline, 5 lead lifetime (s), 6 counts lifetime (s), 7 the rep who holds it
--       (reroute), 8 territory, 9 reason, 10 n candidates, then n times (rep, capacity (0: no
--       limit), name, email, owner id), then the new lead's fields and values (route)
-- Returns {1, rep} routed, {0, rep} nothing done (the lead exists, or is no longer overdue
-- with that rep), {-1, ""} every candidate at capacity.

local mode, id, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
if mode == 'route' then
  if redis.call('EXISTS', KEYS[2]) == 1 then
    return {0, redis.call('HGET', KEYS[2], 'owner') or ''}
  end
else
  local due = redis.call('ZSCORE', KEYS[4], id)
  if not due or tonumber(due) > now or redis.call('HGET', KEYS[2], 'owner') ~= ARGV[7] then
    return {0, ''}
  end
end

local n = tonumber(ARGV[10])
local best, fewest = nil, nil
for i = 0, n - 1 do
  local at = 11 + 5 * i
  local count = tonumber(redis.call('HGET', KEYS[1], ARGV[at]) or '0')
  local capacity = tonumber(ARGV[at + 1])
  if (capacity == 0 or count < capacity) and (fewest == nil or count < fewest) then
    best, fewest = at, count
  end
end
if best == nil then
  return {-1, ''}
end

redis.call('HINCRBY', KEYS[1], ARGV[best], 1)
redis.call('EXPIRE', KEYS[1], ARGV[6])
if mode == 'route' then
  local fields = {}
  for i = 11 + 5 * n, #ARGV do
    fields[#fields + 1] = ARGV[i]
  end
  redis.call('HSET', KEYS[2], unpack(fields))
  redis.call('ZADD', KEYS[3], now, id)
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[5]))
  redis.call('EXPIRE', KEYS[3], ARGV[5])
else
  local previous = redis.call('HGET', KEYS[2], 'previous')
  if previous and previous ~= '' then
    previous = previous .. ',' .. ARGV[7]
  else
    previous = ARGV[7]
  end
  redis.call('HSET', KEYS[2], 'previous', previous, 'rerouted', ARGV[3])
  redis.call('HINCRBY', KEYS[2], 'reroutes', 1)
end
redis.call('HSET', KEYS[2], 'owner', ARGV[best], 'owner_name', ARGV[best + 2],
  'owner_email', ARGV[best + 3], 'owner_id', ARGV[best + 4], 'territory', ARGV[8],
  'reason', ARGV[9], 'status', 'waiting', 'deadline', ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[5])
redis.call('ZADD', KEYS[4], ARGV[4], id)
return {1, ARGV[best]}
