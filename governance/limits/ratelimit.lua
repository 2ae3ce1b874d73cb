-- Sliding-window log rate limiter: one atomic step per request (governance/ratelimit.py).
--
-- KEYS[1]  a sorted set of this subject's accepted requests, scored by time in microseconds
-- ARGV[1]  limit: accepted requests allowed in any window
-- ARGV[2]  window, in microseconds
-- ARGV[3]  a random suffix that makes this request's member unique
-- KEYS[2], ARGV[4]  optional: a string key and the value it must hold (the version of the
--          token cache, governance/permcache.py); when it holds anything else the request
--          is not counted and the script returns {-1, 0, 0}, so that the caller reloads
--          the token. Checking and counting in one step costs a request one round trip.
--
-- Returns {allowed (1|0), accepted requests now in the window, microseconds to wait}:
-- when allowed, the wait is until the oldest accepted request leaves the window (one more
-- slot then frees: the draft's effective window `t`); when refused, until enough have left
-- for this request to fit (Retry-After).
--
-- Redis runs a script alone, so counting and adding cannot interleave between processes.
-- The clock is the Redis server's, one clock for every web process whatever their skew;
-- since Redis 5 a script that writes may read it (its effects, not the script, replicate).

if redis.replicate_commands then
  redis.replicate_commands()
end

local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])

if KEYS[2] and redis.call('GET', KEYS[2]) ~= ARGV[4] then
  return {-1, 0, 0}
end

if limit <= 0 then
  return {0, redis.call('ZCARD', key), window}
end

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])

-- Forget what has left the window (an entry exactly `window` old has left it).
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)

if count < limit then
  redis.call('ZADD', key, now, now .. ':' .. ARGV[3])
  redis.call('PEXPIRE', key, math.ceil(window / 1000))
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return {1, count + 1, tonumber(oldest[2]) + window - now}
end

-- Refused requests are not recorded: a client that keeps knocking still gets in as soon
-- as its earlier requests age out. When a lowered limit leaves more entries than it
-- allows, the request fits once the (count - limit + 1) oldest have left.
local blocking = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
return {0, count, tonumber(blocking[2]) + window - now}
