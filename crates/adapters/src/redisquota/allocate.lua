-- A batch of allocations, each atomic, run in order in one script call.
-- One item per caller waiting on the same connection; an idle connection
-- sends a batch of one.
--
-- Per item, ARGV: flags (1 rolling window, 2 best effort, 4 deduplicate),
-- max, window ms, amount, and for a rolling window the bucket ms.
-- Per item, KEYS: the counter; for a rolling window its buckets; when
-- deduplicating, the deduplication record (string: units granted).
-- Returns two values per item: {granted, ms the answer holds}, or
-- {-1, error message} for an item Redis refused (e.g. a key of the wrong
-- type), so that one bad key does not fail its batch neighbours. Every
-- key written gets a TTL.

local now
local function clock()
  if not now then
    local t = redis.call('TIME')
    now = t[1] * 1000 + math.floor(t[2] / 1000)
  end
  return now
end

-- Fixed window. The counter is a string of units used that expires at the
-- window's end, so its TTL is what is left of the window. The window starts
-- with its first grant. Within a window the hot path is two commands,
-- INCRBY and PTTL: Redis's own expiry ends the window, so no TIME and no
-- stored window end. Units taken beyond the max are given back before the
-- script returns, so nobody ever sees them. The hot path passes Redis the
-- arguments as they came (`*_s`): formatting a Lua number costs more than
-- the command.
local function fixed(counter, dkey, max, window, amount, best, window_s, amount_s)
  if dkey then
    local prev = redis.call('GET', dkey)
    if prev then
      return tonumber(prev), redis.call('PTTL', dkey)
    end
  end
  -- A counter never rests at 0 (see below), so reading back exactly the
  -- amount means the key was just created: the window starts now.
  local used = redis.call('INCRBY', counter, amount_s)
  local fresh = used == amount
  local ttl = window
  if fresh then
    redis.call('PEXPIRE', counter, window_s)
  else
    ttl = redis.call('PTTL', counter)
    if ttl < 0 then
      -- Not written by this script: make it expire all the same.
      redis.call('PEXPIRE', counter, window_s)
      ttl = window
    end
  end
  local granted = amount
  if used > max then
    granted = 0
    if best then
      granted = max - (used - amount)
      if granted < 0 then granted = 0 end
    end
    if fresh and granted == 0 then
      -- Nothing granted: the window has not started.
      redis.call('DEL', counter)
    else
      redis.call('DECRBY', counter, amount - granted)
    end
  end
  if dkey then
    redis.call('SET', dkey, granted, 'PX', ttl)
  end
  return granted, ttl
end

-- Rolling window. The counter is a hash: one field per bucket start ->
-- units, total = units in kept buckets, oldest = earliest kept bucket; the
-- buckets are a sorted set (member and score = bucket start, ms). A bucket
-- is reclaimed once it lies wholly before the window, so a unit is returned
-- between one window and one bucket after its grant, never earlier. The
-- counter and the buckets are (re)armed whenever a bucket is created, which
-- outlasts every bucket they hold. Within a bucket, with nothing to
-- reclaim, the hot path is four commands: TIME (once per batch), HMGET,
-- two HINCRBYs.
local function rolling(counter, buckets, dkey, max, window, bucket, amount, best)
  if dkey then
    local prev = redis.call('GET', dkey)
    if prev then
      return tonumber(prev), window
    end
  end
  local now = clock()
  local state = redis.call('HMGET', counter, 'total', 'oldest')
  local total = tonumber(state[1]) or 0
  local oldest = tonumber(state[2])
  local cutoff = now - window - bucket
  local reclaimed = false
  -- No oldest with units in use is a counter written before oldest was
  -- kept: scan it once.
  if (oldest and oldest <= cutoff) or (not oldest and total > 0) then
    local old = redis.call('ZRANGEBYSCORE', buckets, '-inf', cutoff)
    -- In chunks: unpack() is limited by Lua's stack.
    for i = 1, #old, 1000 do
      local chunk = {unpack(old, i, math.min(i + 999, #old))}
      local units = redis.call('HMGET', counter, unpack(chunk))
      for _, n in ipairs(units) do
        total = total - (tonumber(n) or 0)
      end
      redis.call('HDEL', counter, unpack(chunk))
    end
    if #old > 0 then
      redis.call('ZREMRANGEBYSCORE', buckets, '-inf', cutoff)
    end
    oldest = tonumber(redis.call('ZRANGE', buckets, 0, 0)[1])
    if total < 0 then total = 0 end
    reclaimed = true
  end

  local left = max - total
  if left < 0 then left = 0 end
  local granted = 0
  if amount <= left then
    granted = amount
  elseif best then
    granted = left
  end

  if granted > 0 then
    local start = now - (now % bucket)
    if redis.call('HINCRBY', counter, start, granted) == granted then
      -- A new bucket: it is the newest, so arm both keys from it.
      redis.call('ZADD', buckets, start, start)
      redis.call('PEXPIRE', buckets, window + bucket)
      redis.call('PEXPIRE', counter, window + bucket)
      if not oldest then
        oldest = start
        reclaimed = true
      end
    end
    total = total + granted
    if not reclaimed then
      redis.call('HINCRBY', counter, 'total', granted)
    end
  end
  if reclaimed then
    if oldest then
      redis.call('HSET', counter, 'total', total, 'oldest', oldest)
    else
      redis.call('HSET', counter, 'total', total)
      redis.call('HDEL', counter, 'oldest')
    end
  end
  if dkey then
    redis.call('SET', dkey, granted, 'PX', window)
  end
  return granted, window
end

local out = {}
local k, a = 1, 1
while a <= #ARGV do
  local flags = tonumber(ARGV[a])
  local max = tonumber(ARGV[a + 1])
  local window_s, amount_s = ARGV[a + 2], ARGV[a + 3]
  local window, amount = tonumber(window_s), tonumber(amount_s)
  a = a + 4
  local best = math.floor(flags / 2) % 2 == 1
  local dedup = math.floor(flags / 4) % 2 == 1
  local ok, granted, ttl
  if flags % 2 == 1 then
    local bucket = tonumber(ARGV[a])
    a = a + 1
    local dkey = dedup and KEYS[k + 2] or nil
    ok, granted, ttl = pcall(rolling, KEYS[k], KEYS[k + 1], dkey, max, window, bucket, amount, best)
    k = k + 2
  else
    local dkey = dedup and KEYS[k + 1] or nil
    ok, granted, ttl = pcall(fixed, KEYS[k], dkey, max, window, amount, best, window_s, amount_s)
    k = k + 1
  end
  if dedup then k = k + 1 end
  if ok then
    out[#out + 1] = granted
    out[#out + 1] = ttl
  else
    -- redis.call raises a table with the server's error, Lua a string.
    if type(granted) == 'table' then granted = granted.err end
    out[#out + 1] = -1
    out[#out + 1] = tostring(granted)
  end
end
return out
