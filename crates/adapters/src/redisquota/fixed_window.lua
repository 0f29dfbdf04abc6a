-- One fixed-window allocation, atomically.
-- KEYS[1]: the counter (hash: token = units used, expire = window end, ms;
--          the key itself expires at the window's end)
-- KEYS[2]: the deduplication record (string: units granted); passed only
--          when deduplicating
-- ARGV: max, window ms, amount, best effort (1/0), deduplicate (1/0)
-- Returns {granted, ms left in the window}. Every key written gets a TTL.
-- Within a window the hot path is three commands: TIME, HMGET, HINCRBY.
local max = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local amount = tonumber(ARGV[3])

if ARGV[5] == '1' then
  local prev = redis.call('GET', KEYS[2])
  if prev then
    return {tonumber(prev), redis.call('PTTL', KEYS[2])}
  end
end

local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local state = redis.call('HMGET', KEYS[1], 'token', 'expire')
local used = tonumber(state[1]) or 0
local expire = tonumber(state[2]) or 0
local fresh = expire <= now
if fresh then
  used = 0
  expire = now + window
end

local left = max - used
if left < 0 then left = 0 end
local granted = 0
if amount <= left then
  granted = amount
elseif ARGV[4] == '1' then
  granted = left
end

if granted > 0 then
  if fresh then
    redis.call('HSET', KEYS[1], 'token', granted, 'expire', expire)
    redis.call('PEXPIREAT', KEYS[1], expire)
  else
    redis.call('HINCRBY', KEYS[1], 'token', granted)
  end
end
local ttl = expire - now
if ARGV[5] == '1' then
  redis.call('SET', KEYS[2], granted, 'PX', ttl)
end
return {granted, ttl}
