-- breaker.lua — a circuit breaker per upstream, shared by every worker, atomic in Redis.
-- pybreaker's Redis storage counts consecutive failures and lets every process probe at
-- once in half-open; this needs failures within a window and exactly one probe cluster-wide.
--
-- KEYS[1]  breaker hash: state (closed|open|half_open), open_until (ms), probe_until (ms)
-- KEYS[2]  failure counter of the current window (expires with the window)
-- ARGV[1]  op: allow | success | failure
-- ARGV[2]  failures that open the breaker
-- ARGV[3]  window in ms
-- ARGV[4]  cool-down in ms (open → half-open)
-- ARGV[5]  probe lease in ms (how long one probe may take before another is let through)
-- Returns {verdict, ms}:
--   allow:   {"closed", 0} | {"probe", 0} | {"open", ms until a probe may go}
--   success: {"closed", 0}
--   failure: {"closed", failures so far} | {"open", cool-down ms}

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local op = ARGV[1]
local threshold = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local cooldown = tonumber(ARGV[4])
local lease = tonumber(ARGV[5])
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'

local function open()
  redis.call('HSET', KEYS[1], 'state', 'open', 'open_until', string.format('%d', now + cooldown), 'probe_until', '0')
  redis.call('DEL', KEYS[2])
  return {'open', cooldown}
end

if op == 'allow' then
  if state == 'closed' then
    return {'closed', 0}
  end
  local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or 0)
  local probe_until = tonumber(redis.call('HGET', KEYS[1], 'probe_until') or 0)
  if now < open_until then
    return {'open', open_until - now}
  end
  if now < probe_until then
    return {'open', probe_until - now}  -- another worker is probing right now
  end
  redis.call('HSET', KEYS[1], 'state', 'half_open', 'probe_until', string.format('%d', now + lease))
  return {'probe', 0}
end

if op == 'success' then
  if state ~= 'closed' then
    redis.call('HSET', KEYS[1], 'state', 'closed', 'open_until', '0', 'probe_until', '0')
  end
  redis.call('DEL', KEYS[2])
  return {'closed', 0}
end

-- failure
if state == 'half_open' or state == 'open' then
  return open()
end
local failures = redis.call('INCR', KEYS[2])
if failures == 1 then
  redis.call('PEXPIRE', KEYS[2], window)
end
if failures >= threshold then
  return open()
end
return {'closed', failures}
