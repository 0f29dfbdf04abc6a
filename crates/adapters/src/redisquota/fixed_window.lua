-- One fixed-window allocation, atomically.
-- KEYS[1]: the counter (string: units used; the key expires at the
--          window's end, so its TTL is what is left of the window)
-- KEYS[2]: the deduplication record (string: units granted); passed only
--          when deduplicating
-- ARGV: max, window ms, amount, best effort (1/0), deduplicate (1/0)
-- Returns {granted, ms left in the window}. Every key written gets a TTL.
-- The window starts with its first grant. Within a window the hot path is
-- two commands, INCRBY and PTTL: Redis's own expiry ends the window, so no
-- TIME and no stored window end. Units taken beyond the max are given back
-- before the script returns, so nobody ever sees them.
local max = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local amount = tonumber(ARGV[3])
local dedup = ARGV[5] == '1'

if dedup then
  local prev = redis.call('GET', KEYS[2])
  if prev then
    return {tonumber(prev), redis.call('PTTL', KEYS[2])}
  end
end

-- A counter never rests at 0 (see below), so reading back exactly the
-- amount means the key was just created: the window starts now.
local used = redis.call('INCRBY', KEYS[1], amount)
local fresh = used == amount
local ttl = window
if fresh then
  redis.call('PEXPIRE', KEYS[1], window)
else
  ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then
    -- Not written by this script: make it expire all the same.
    redis.call('PEXPIRE', KEYS[1], window)
    ttl = window
  end
end

local granted = amount
if used > max then
  granted = 0
  if ARGV[4] == '1' then
    granted = max - (used - amount)
    if granted < 0 then granted = 0 end
  end
  if fresh and granted == 0 then
    -- Nothing granted: the window has not started.
    redis.call('DEL', KEYS[1])
  else
    redis.call('DECRBY', KEYS[1], amount - granted)
  end
end
if dedup then
  redis.call('SET', KEYS[2], granted, 'PX', ttl)
end
return {granted, ttl}
