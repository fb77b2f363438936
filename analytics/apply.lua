-- Apply a batch of events' effects atomically, each event exactly once.
-- KEYS: the site's event stream (for routing), then every key the batch touches, which
--       Python lists (analytics/apply_keys.py): all carry the site's hash tag, so they share
--       the stream's Redis Cluster slot. An operation on a key not declared refuses the batch
--       before its first write, so no key reaches Redis unannounced.
-- ARGV[1]: seconds to keep applied ids; ARGV[2]: JSON list of events, each
--          [done_key, event_id, operations]; ARGV[3]: JSON {key: seconds to live} of the keys
--          the batch writes. Returns one 1 (applied) or 0 (seen before) per event.
-- Field names: Python passes prefixes (rules/keyspace.py builds them, each ending in the
-- separator) and this script appends the statistics. The separators and statistics' names
-- are not spelled here: SEP, RECORD_SEP, LIST_SEP, EXPOSURE_*, OUTCOME_* and VISITOR_* are
-- locals generated from rules/keyspace.py (lua_constants), prepended when the script loads.
local function num(x)
  return string.format('%.17g', x)
end

local function split(text, separator)
  -- the parts of text between separators (plain, not a pattern), empty ones included
  local parts, start = {}, 1
  while true do
    local at = string.find(text, separator, start, true)
    if not at then
      parts[#parts + 1] = string.sub(text, start)
      return parts
    end
    parts[#parts + 1] = string.sub(text, start, at - 1)
    start = at + #separator
  end
end

local function admitted(open)
  -- an open report segment's cell: its value's own while the experiment keeps fewer than
  -- open[3] values of the field apart (or already keeps this one), else other
  local values, member, most, cell, other = open[1], open[2], open[3], open[4], open[5]
  if redis.call('SISMEMBER', values, member) == 1 or redis.call('SCARD', values) < most then
    redis.call('SADD', values, member)
    return cell
  end
  return other
end

local function expose(op)
  -- first exposure of a visitor to an experiment: its cells chosen once and recorded, then
  -- visitors and the covariate's sums per cell; verified visitors too when the visitor's
  -- browser already ran the beacon
  local xkey, experiment, head, agg, variant_prefix = op[2], op[3], op[4], op[5], op[6]
  local cells, open_cells, y, verified = op[7], op[8], op[9], op[10]
  if redis.call('HEXISTS', xkey, experiment) == 1 then
    return
  end
  local chosen = {}
  for _, cell in ipairs(cells) do
    chosen[#chosen + 1] = cell
  end
  for _, open in ipairs(open_cells) do
    chosen[#chosen + 1] = admitted(open)
  end
  redis.call('HSET', xkey, experiment, head .. table.concat(chosen, LIST_SEP))
  for _, cell in ipairs(chosen) do
    -- the cell's prefix, as rules/keyspace.py exposure_prefix builds it
    local prefix = variant_prefix .. cell .. SEP
    redis.call('HINCRBY', agg, prefix .. EXPOSURE_VISITORS, 1)
    redis.call('HINCRBYFLOAT', agg, prefix .. EXPOSURE_COVARIATE, num(y))
    redis.call('HINCRBYFLOAT', agg, prefix .. EXPOSURE_COVARIATE_SQUARES, num(y * y))
    if verified == 1 then
      redis.call('HINCRBY', agg, prefix .. EXPOSURE_VERIFIED, 1)
    end
  end
end

local function verify(op)
  -- the visitor's browser ran the beacon for the first time: their exposures so far count
  -- as verified; bots that never run JavaScript never get there. The exposures hash holds
  -- first exposures under the experiment's key (a record: variant, time, day, covariate,
  -- segments) and per-metric totals under keys with the separator, skipped here.
  local profile, xkey, agg_prefix = op[2], op[3], op[4]
  if redis.call('HSETNX', profile, 'beacon', 1) == 0 then
    return
  end
  local fields = redis.call('HGETALL', xkey)
  for index = 1, #fields, 2 do
    local experiment = fields[index]
    if not string.find(experiment, SEP, 1, true) then
      local record = split(fields[index + 1], RECORD_SEP)
      if #record == 5 then
        local variant, day = record[1], record[3]
        for _, segment in ipairs(split(record[5], LIST_SEP)) do
          if segment ~= '' then
            -- the cell's prefix, as rules/keyspace.py exposure_prefix builds it
            local prefix = day .. SEP .. variant .. SEP .. segment .. SEP
            redis.call('HINCRBY', agg_prefix .. experiment, prefix .. EXPOSURE_VERIFIED, 1)
          end
        end
      end
    end
  end
end

local function outcome_record(xkey, experiment, metric)
  -- the visitor's first-exposure record and the metric's prefix in each cell it recorded, as
  -- rules/keyspace.py outcome_prefix builds it; none without a record
  local record = redis.call('HGET', xkey, experiment)
  if not record then
    return nil, {}
  end
  local parts = split(record, RECORD_SEP)
  local prefixes = {}
  if #parts == 5 then
    for _, segment in ipairs(split(parts[5], LIST_SEP)) do
      if segment ~= '' then
        prefixes[#prefixes + 1] = parts[3] .. SEP .. parts[1] .. SEP .. segment .. SEP .. metric .. SEP
      end
    end
  end
  return record, prefixes
end

local function outcome(op)
  -- a conversion of an exposed visitor: per-visitor totals move the sufficient statistics of
  -- the cells of their first exposure. op[4]: the prefix of the visitor's totals in their
  -- exposures hash; op[10]: the metric's per-visitor revenue cap, 0 for none (capped values
  -- enter the sums); op[11]: 1 when every conversion counts, 0 when only the first does;
  -- op[12], op[13]: the buyers' sorted set of a percentile-capped metric ('' for none) and the
  -- visitor, its member's start (keyspace.revenue_member); every non-zero total is kept, the
  -- negative ones (allow_negative: refunds) for the report's floor (stats/capping.py)
  local xkey, experiment, totals, agg, metric = op[2], op[3], op[4], op[5], op[6]
  local add_c, add_r, y, cap = op[7], op[8], op[9], op[10]
  local repeatable, buyers, visitor = op[11], op[12], op[13]
  local record, prefixes = outcome_record(xkey, experiment, metric)
  local count_field, revenue_field = totals .. VISITOR_COUNT, totals .. VISITOR_REVENUE
  local old_c = tonumber(redis.call('HGET', xkey, count_field)) or 0
  if repeatable == 0 then
    if old_c > 0 then
      return
    end
    add_c = math.min(add_c, 1)
  end
  local old_r = tonumber(redis.call('HGET', xkey, revenue_field)) or 0
  redis.call('HINCRBY', xkey, count_field, add_c)
  if add_r ~= 0 then
    redis.call('HINCRBYFLOAT', xkey, revenue_field, num(add_r))
  end
  local new_r = old_r + add_r
  if buyers ~= '' and record and add_r ~= 0 then
    local member = visitor .. RECORD_SEP .. record
    if new_r ~= 0 then
      redis.call('ZADD', buyers, num(new_r), member)
    else
      redis.call('ZREM', buyers, member)
    end
  end
  if cap > 0 then
    old_r, new_r = math.min(old_r, cap), math.min(new_r, cap)
  end
  local delta = new_r - old_r
  for _, prefix in ipairs(prefixes) do
    redis.call('HINCRBY', agg, prefix .. OUTCOME_COUNT, add_c)
    redis.call('HINCRBY', agg, prefix .. OUTCOME_COUNT_SQUARES,
      (old_c + add_c) * (old_c + add_c) - old_c * old_c)
    redis.call('HINCRBYFLOAT', agg, prefix .. OUTCOME_COUNT_COVARIATE, num(add_c * y))
    if old_c == 0 and add_c > 0 then
      redis.call('HINCRBY', agg, prefix .. OUTCOME_CONVERTED, 1)
      redis.call('HINCRBYFLOAT', agg, prefix .. OUTCOME_CONVERTED_COVARIATE, num(y))
    end
    if delta ~= 0 then
      -- Σx³ only where it is whole: a cell whose revenue began before the worker kept cubes
      -- (it has Σx but no Σx³) never gets one, so the report reads its skewness as unknown
      local cubes = redis.call('HEXISTS', agg, prefix .. OUTCOME_REVENUE_CUBES) == 1
        or redis.call('HEXISTS', agg, prefix .. OUTCOME_REVENUE) == 0
      redis.call('HINCRBYFLOAT', agg, prefix .. OUTCOME_REVENUE, num(delta))
      redis.call('HINCRBYFLOAT', agg, prefix .. OUTCOME_REVENUE_SQUARES,
        num(new_r * new_r - old_r * old_r))
      if cubes then
        redis.call('HINCRBYFLOAT', agg, prefix .. OUTCOME_REVENUE_CUBES,
          num(new_r * new_r * new_r - old_r * old_r * old_r))
      end
      redis.call('HINCRBYFLOAT', agg, prefix .. OUTCOME_REVENUE_COVARIATE, num(delta * y))
    end
  end
end

local function heat(op)
  -- an account's heat from one visitor's page view or form (op: hot set, heat, account, the
  -- visitor's spent hash for the account and day, the form's field or '' for a page view, the
  -- daily bound, the hash the account's claimed-domain visitors share that day or '' for a
  -- visitor matched by their network, then roll-up operations): a form counts once a day per
  -- visitor, the visitor's total stops at the bound, and a claimed visitor's also where the
  -- shared total does (then no form is noted either: the hashes stay as small as the bound
  -- makes them). Whether it added any heat, for op[9], which counts only when it did.
  local spent, form, bound, shared = op[5], op[6], op[7], op[8]
  local room = bound - (tonumber(redis.call('HGET', spent, 'total')) or 0)
  if shared ~= '' then
    room = math.min(room, bound - (tonumber(redis.call('HGET', shared, 'total')) or 0))
  end
  if room <= 0 then
    return false
  end
  if form ~= '' and redis.call('HSETNX', spent, form, 1) == 0 then
    return false
  end
  local add = math.min(op[3], room)
  redis.call('HINCRBYFLOAT', spent, 'total', num(add))
  if shared ~= '' then
    redis.call('HINCRBYFLOAT', shared, 'total', num(add))
  end
  redis.call('ZINCRBY', op[2], num(add), op[4])
  return true
end

local function engage(op)
  -- engaged time credited no faster than the clock (effects.engage_op): op = profile, ms,
  -- arrival (ms), reach back (ms), slack (ms), first-seen field (s), cursor field (ms), fields
  local key, ms, at = op[2], op[3], op[4]
  local first = tonumber(redis.call('HGET', key, op[7]))
  local cursor = math.max(tonumber(redis.call('HGET', key, op[8])) or 0, at - op[5])
  if first then
    cursor = math.max(cursor, first * 1000)
  end
  -- whole milliseconds: HINCRBY takes integers, and first seen has fractions of one
  local credit = math.floor(math.min(ms, math.max(0, at + op[6] - cursor)))
  if credit > 0 then
    redis.call('HSET', key, op[8], cursor + credit)
    for _, name in ipairs(op[9]) do
      redis.call('HINCRBY', key, name, credit)
    end
  end
end

local KNOWN = {incr = 1, fincr = 1, setnx = 1, set = 1, max = 1, push = 1, pfadd = 1,
               zincr = 1, heat = 1, latest = 1, session_page = 1, expose = 1, outcome = 1,
               verify = 1, engage = 1}
local batch = cjson.decode(ARGV[2])
local DECLARED = {}
for _, key in ipairs(KEYS) do
  DECLARED[key] = true
end

local ROLLUP = {incr = 1, max = 1, pfadd = 1, latest = 1}

local function undeclared(op)
  -- the first key of op that KEYS does not name, if any (positions as apply() reads them);
  -- verify's aggregates are named by the experiments the exposures hash holds now, or that
  -- an expose of this batch adds (whose aggregates key that expose declares)
  local name = op[1]
  local keys = {op[2]}
  if name == 'expose' then
    keys[#keys + 1] = op[5]
    for _, open in ipairs(op[8]) do
      keys[#keys + 1] = open[1]
    end
  elseif name == 'outcome' then
    keys[#keys + 1] = op[5]
    if op[12] ~= '' then
      keys[#keys + 1] = op[12]
    end
  elseif name == 'heat' then
    keys[#keys + 1] = op[5]
    if op[8] ~= '' then
      keys[#keys + 1] = op[8]
    end
    for _, inner in ipairs(op[9]) do
      keys[#keys + 1] = inner[2]
    end
  elseif name == 'verify' then
    keys[#keys + 1] = op[3]
    local fields = redis.call('HKEYS', op[3])
    for _, experiment in ipairs(fields) do
      if not string.find(experiment, SEP, 1, true) then
        keys[#keys + 1] = op[4] .. experiment
      end
    end
  end
  for _, key in ipairs(keys) do
    if not DECLARED[key] then
      return key
    end
  end
  return nil
end

-- a script's writes are not rolled back on error: refuse the batch before the first write
for _, event in ipairs(batch) do
  if not DECLARED[event[1]] then
    return redis.error_reply('undeclared key ' .. event[1])
  end
  for _, op in ipairs(event[3]) do
    if not KNOWN[op[1]] then
      return redis.error_reply('unknown operation ' .. tostring(op[1]))
    end
    if op[1] == 'heat' then
      for _, inner in ipairs(op[9]) do
        if not ROLLUP[inner[1]] then
          return redis.error_reply('unknown roll-up operation ' .. tostring(inner[1]))
        end
      end
    end
    local missing = undeclared(op)
    if missing then
      return redis.error_reply('undeclared key ' .. missing)
    end
  end
end
local lifetimes = cjson.decode(ARGV[3])
for key, _ in pairs(lifetimes) do
  if not DECLARED[key] then
    return redis.error_reply('undeclared key ' .. key)
  end
end

local function apply(op)
  -- one operation; a heat operation's roll-up ones (a roll-up operation is never a heat one)
  -- only when it added heat
  local name = op[1]
  if name == 'incr' then
    redis.call('HINCRBY', op[2], op[3], op[4])
  elseif name == 'fincr' then
    redis.call('HINCRBYFLOAT', op[2], op[3], num(op[4]))
  elseif name == 'setnx' then
    redis.call('HSETNX', op[2], op[3], op[4])
  elseif name == 'set' then
    redis.call('HSET', op[2], op[3], op[4])
  elseif name == 'max' then
    local current = tonumber(redis.call('HGET', op[2], op[3]))
    if current == nil or op[4] > current then
      redis.call('HSET', op[2], op[3], op[4])
    end
  elseif name == 'push' then
    redis.call('LPUSH', op[2], op[3])
    redis.call('LTRIM', op[2], 0, op[4] - 1)
  elseif name == 'pfadd' then
    redis.call('PFADD', op[2], op[3])
  elseif name == 'session_page' then
    -- a page view: one more page in the session, or a new session (the one before it was a
    -- bounce when it had a single page)
    if op[3] == 1 then
      if redis.call('HGET', op[2], 'session_pages') == '1' then
        redis.call('HINCRBY', op[2], 'bounces', 1)
      end
      redis.call('HSET', op[2], 'session_pages', 1)
    else
      redis.call('HINCRBY', op[2], 'session_pages', 1)
    end
  elseif name == 'zincr' then
    redis.call('ZINCRBY', op[2], num(op[3]), op[4])
  elseif name == 'heat' then
    if heat(op) then
      for _, inner in ipairs(op[9]) do
        apply(inner)
      end
    end
  elseif name == 'latest' then
    -- a sorted set of members by their latest time, only the op[5] most recent kept
    redis.call('ZADD', op[2], 'GT', num(op[3]), op[4])
    redis.call('ZREMRANGEBYRANK', op[2], 0, -op[5] - 1)
  elseif name == 'expose' then
    expose(op)
  elseif name == 'outcome' then
    outcome(op)
  elseif name == 'verify' then
    verify(op)
  elseif name == 'engage' then
    engage(op)
  end
end

local results = {}
for index, event in ipairs(batch) do
  local done_key, id, ops = event[1], event[2], event[3]
  if redis.call('HSETNX', done_key, id, 1) == 1 then
    for _, op in ipairs(ops) do
      apply(op)
    end
    results[index] = 1
  else
    results[index] = 0 -- applied before (a redelivered or duplicated event): nothing to do
  end
end
local expired_done = {}
for _, event in ipairs(batch) do
  if not expired_done[event[1]] then
    redis.call('EXPIRE', event[1], ARGV[1])
    expired_done[event[1]] = true
  end
end
for key, seconds in pairs(lifetimes) do
  redis.call('EXPIRE', key, seconds)
end
return results
