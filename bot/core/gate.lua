-- gate.lua — decide what happens to one incoming message in ONE Redis round trip.
--
-- Separate calls would cost six or seven round trips per message (dedupe, ban, maintenance,
-- limit override, rate state read and write, cache) and could interleave with other bot
-- processes; one script is one round trip and atomic. Admin state lives in one hash so a
-- single HMGET reads all of it.
--
-- KEYS[1]  seen marker for this request id (SET NX EX: a redelivered update is dropped)
-- KEYS[2]  admin hash: "maintenance" -> message, "ban:<user>" -> reason,
--          "noticed:<user>" -> 1 (a banned user is told once, then silence),
--          "limit:<user>" / "limit:*" -> "interval_ms:burst" (per-user / default override)
-- KEYS[3]  this user's rate state: the GCRA theoretical arrival time in ms, with an expiry
-- KEYS[4]  cache key of the lookup (read only when ARGV[5] says so)
-- KEYS[5]  this minute's stats hash (outcome -> count), kept two hours for /stats
-- KEYS[6]  in-flight marker of this lookup (coalescing: one upstream call per lookup)
-- KEYS[7]  requests waiting for the in-flight lookup (a list of request JSON)
-- KEYS[8]  the upstream's circuit breaker hash (open_until in ms)
-- ARGV[1]  user key ("telegram:123")
-- ARGV[2]  dedupe TTL in seconds
-- ARGV[3]  default emission interval in ms (period / count)
-- ARGV[4]  default burst (messages allowed at once)
-- ARGV[5]  flags: "a" when the user is an admin (not held by maintenance or bans),
--          "c" to look up the cache (and check the breaker),
--          "k" to coalesce identical in-flight lookups
-- ARGV[6]  the request as JSON (kept in the waiters list when the lookup is in flight)
-- ARGV[7]  in-flight marker TTL in seconds
-- Cache values are "<fresh_until_ms>:<json>": past fresh_until an entry is stale but may be
-- served (stale-while-revalidate, stale-if-error) until the key itself expires.
-- Returns one string "outcome:value": duplicate | banned:reason | banned_silent
--   | maintenance:message | limited:retry_after_ms | hit:json | stale:json (a refresh runs)
--   | stale_refresh:json (the caller starts the refresh) | stale_open:json (breaker open)
--   | open:retry_ms | miss (the caller queues the lookup) | coalesced (queued behind it)
--   | pass

local user = ARGV[1]
local flags = ARGV[5]

local function done(outcome, value)
  -- The first count of an outcome in a minute sets the hash's expiry; later ones need not.
  if redis.call('HINCRBY', KEYS[5], outcome, 1) == 1 then
    redis.call('EXPIRE', KEYS[5], 7200)
  end
  return outcome .. ':' .. (value or '')
end

if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then
  return done('duplicate')
end

local admin = redis.call('HMGET', KEYS[2], 'maintenance', 'ban:' .. user, 'limit:' .. user, 'limit:*')

if not string.find(flags, 'a', 1, true) then
  if admin[2] then
    if redis.call('HSETNX', KEYS[2], 'noticed:' .. user, '1') == 1 then
      return done('banned', admin[2])
    end
    return done('banned_silent')
  end
  if admin[1] then
    return done('maintenance', admin[1])
  end
end

-- GCRA (generic cell rate algorithm): one key per user holding the theoretical arrival
-- time; `burst` messages may arrive at once, then one per `interval`.
local interval = tonumber(ARGV[3])
local burst = tonumber(ARGV[4])
local override = admin[3] or admin[4]
if override then
  local i, b = string.match(override, '^(%d+):(%d+)$')
  if i then
    interval = tonumber(i)
    burst = tonumber(b)
  end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[3]) or now)
if tat < now then
  tat = now
end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if now < allow_at then
  return done('limited', string.format('%d', allow_at - now))
end
redis.call('SET', KEYS[3], string.format('%d', new_tat), 'PX', string.format('%d', new_tat - now))

if string.find(flags, 'c', 1, true) then
  local cached = redis.call('GET', KEYS[4])
  local body
  if cached then
    local sep = string.find(cached, ':', 1, true)
    local fresh_until = tonumber(string.sub(cached, 1, sep - 1)) or 0
    body = string.sub(cached, sep + 1)
    if now < fresh_until then
      return done('hit', body)  -- fresh: the breaker does not matter (one call fewer)
    end
  end
  local open_until = tonumber(redis.call('HGET', KEYS[8], 'open_until') or 0)
  local breaker_open = now < open_until
  if cached then
    if breaker_open then
      return done('stale_open', body)
    end
    if redis.call('SET', KEYS[6], '1', 'NX', 'EX', ARGV[7]) then
      return done('stale_refresh', body)
    end
    return done('stale', body)
  end
  if breaker_open then
    return done('open', string.format('%d', open_until - now))
  end
  if not string.find(flags, 'k', 1, true) or redis.call('SET', KEYS[6], '1', 'NX', 'EX', ARGV[7]) then
    return done('miss')
  end
  redis.call('RPUSH', KEYS[7], ARGV[6])
  redis.call('EXPIRE', KEYS[7], ARGV[7])
  return done('coalesced')
end
return done('pass')
