-- One rolling-window allocation, atomically.
-- KEYS[1]: the counter (hash: one field per bucket start -> units,
--          total = units in kept buckets, oldest = earliest kept bucket)
-- KEYS[2]: the buckets (sorted set: member and score = bucket start, ms)
-- KEYS[3]: the deduplication record (string: units granted); passed only
--          when deduplicating
-- ARGV: max, window ms, bucket ms, amount, best effort (1/0), deduplicate (1/0)
-- A bucket is reclaimed once it lies wholly before the window, so a unit
-- is returned between one window and one bucket after its grant, never
-- earlier. Returns {granted, window ms}. Every key written gets a TTL: the
-- counter and the buckets are (re)armed whenever a bucket is created, which
-- outlasts every bucket they hold. Within a bucket, with nothing to
-- reclaim, the hot path is four commands: TIME, HMGET, two HINCRBYs.
local max = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local bucket = tonumber(ARGV[3])
local amount = tonumber(ARGV[4])
local dedup = ARGV[6] == '1'

if dedup then
  local prev = redis.call('GET', KEYS[3])
  if prev then
    return {tonumber(prev), window}
  end
end

local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local state = redis.call('HMGET', KEYS[1], 'total', 'oldest')
local total = tonumber(state[1]) or 0
local oldest = tonumber(state[2])
local cutoff = now - window - bucket
local reclaimed = false
-- No oldest with units in use is a counter written before oldest was
-- kept: scan it once.
if (oldest and oldest <= cutoff) or (not oldest and total > 0) then
  local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', cutoff)
  -- In chunks: unpack() is limited by Lua's stack.
  for i = 1, #old, 1000 do
    local chunk = {unpack(old, i, math.min(i + 999, #old))}
    local units = redis.call('HMGET', KEYS[1], unpack(chunk))
    for _, n in ipairs(units) do
      total = total - (tonumber(n) or 0)
    end
    redis.call('HDEL', KEYS[1], unpack(chunk))
  end
  if #old > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', cutoff)
  end
  oldest = tonumber(redis.call('ZRANGE', KEYS[2], 0, 0)[1])
  if total < 0 then total = 0 end
  reclaimed = true
end

local left = max - total
if left < 0 then left = 0 end
local granted = 0
if amount <= left then
  granted = amount
elseif ARGV[5] == '1' then
  granted = left
end

if granted > 0 then
  local start = now - (now % bucket)
  if redis.call('HINCRBY', KEYS[1], start, granted) == granted then
    -- A new bucket: it is the newest, so arm both keys from it.
    redis.call('ZADD', KEYS[2], start, start)
    redis.call('PEXPIRE', KEYS[2], window + bucket)
    redis.call('PEXPIRE', KEYS[1], window + bucket)
    if not oldest then
      oldest = start
      reclaimed = true
    end
  end
  total = total + granted
  if not reclaimed then
    redis.call('HINCRBY', KEYS[1], 'total', granted)
  end
end
if reclaimed then
  if oldest then
    redis.call('HSET', KEYS[1], 'total', total, 'oldest', oldest)
  else
    redis.call('HSET', KEYS[1], 'total', total)
    redis.call('HDEL', KEYS[1], 'oldest')
  end
end
if dedup then
  redis.call('SET', KEYS[3], granted, 'PX', window)
end
return {granted, window}
