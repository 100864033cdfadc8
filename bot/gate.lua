-- gate.lua — decide what happens to one incoming message in ONE Redis round trip.
--
-- Separate calls would cost five or six round trips per message (dedupe, ban, maintenance,
-- limit override, rate limit, cache) and could interleave with other bot processes; a
-- script is one round trip and atomic.
--
-- KEYS[1]  seen marker for this request id       (SET NX EX: dedupe of redelivered updates)
-- KEYS[2]  banned users   (hash user -> reason)
-- KEYS[3]  ban notices    (hash user -> 1: a banned user is told once, then silence)
-- KEYS[4]  maintenance message (string; absent = not in maintenance)
-- KEYS[5]  per-user limit overrides (hash user|"*" -> "interval_ms:burst")
-- KEYS[6]  this user's rate state: GCRA theoretical arrival time in ms, with an expiry
-- KEYS[7]  cache key of the lookup (read only when ARGV[6] == "1")
-- ARGV[1]  user key ("telegram:123")
-- ARGV[2]  dedupe TTL in seconds
-- ARGV[3]  default emission interval in ms (period / count)
-- ARGV[4]  default burst (messages allowed at once)
-- ARGV[5]  "1" when the user is an admin (not held by maintenance or bans)
-- ARGV[6]  "1" to look up the cache
-- Returns {outcome, value}: duplicate | banned reason | banned_silent | maintenance message
--   | limited retry_after_ms | hit cached_json | miss | pass (nothing cacheable)

local user = ARGV[1]

if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then
  return {'duplicate', ''}
end

if ARGV[5] ~= '1' then
  local reason = redis.call('HGET', KEYS[2], user)
  if reason then
    if redis.call('HSETNX', KEYS[3], user, '1') == 1 then
      return {'banned', reason}
    end
    return {'banned_silent', ''}
  end
  local message = redis.call('GET', KEYS[4])
  if message then
    return {'maintenance', message}
  end
end

-- GCRA (generic cell rate algorithm): one key per user holding the theoretical arrival
-- time; `burst` messages may arrive at once, then one per `interval`.
local interval = tonumber(ARGV[3])
local burst = tonumber(ARGV[4])
local override = redis.call('HGET', KEYS[5], user) or redis.call('HGET', KEYS[5], '*')
if override then
  local i, b = string.match(override, '^(%d+):(%d+)$')
  if i then
    interval = tonumber(i)
    burst = tonumber(b)
  end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[6]) or now)
if tat < now then
  tat = now
end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if now < allow_at then
  return {'limited', string.format('%d', allow_at - now)}
end
redis.call('SET', KEYS[6], string.format('%d', new_tat), 'PX', string.format('%d', new_tat - now))

if ARGV[6] == '1' then
  local cached = redis.call('GET', KEYS[7])
  if cached then
    return {'hit', cached}
  end
  return {'miss', ''}
end
return {'pass', ''}
