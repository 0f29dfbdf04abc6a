-- One rolling-window allocation, atomically.
-- KEYS[1]: the counter (hash: one field per bucket start -> units, and
--          total = units in kept buckets)
-- KEYS[2]: the buckets (sorted set: member and score = bucket start, ms)
-- KEYS[3]: the deduplication record (string: units granted)
-- ARGV: max, window ms, bucket ms, amount, best effort (1/0), deduplicate (1/0)
-- A bucket is reclaimed once it lies wholly before the window, so a unit
-- is returned between one window and one bucket after its grant, never
-- earlier. Returns {granted, window ms}. Every key written gets a TTL.
local max = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local bucket = tonumber(ARGV[3])
local amount = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)

if ARGV[6] == '1' then
  local prev = redis.call('GET', KEYS[3])
  if prev then
    return {tonumber(prev), window}
  end
end

local total = tonumber(redis.call('HGET', KEYS[1], 'total')) or 0
local oldest = now - window - bucket
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', oldest)
for _, b in ipairs(old) do
  total = total - (tonumber(redis.call('HGET', KEYS[1], b)) or 0)
  redis.call('HDEL', KEYS[1], b)
end
if #old > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', oldest)
end
if total < 0 then total = 0 end

local left = max - total
if left < 0 then left = 0 end
local granted = 0
if amount <= left then
  granted = amount
elseif ARGV[5] == '1' then
  granted = left
end

local start = now - (now % bucket)
if granted > 0 then
  redis.call('HINCRBY', KEYS[1], start, granted)
  redis.call('ZADD', KEYS[2], start, start)
  total = total + granted
end
redis.call('HSET', KEYS[1], 'total', total)
redis.call('PEXPIRE', KEYS[1], window + bucket)
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('PEXPIRE', KEYS[2], window + bucket)
end
if ARGV[6] == '1' then
  redis.call('SET', KEYS[3], granted, 'PX', window)
end
return {granted, window}
