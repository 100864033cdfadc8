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
-- ARGV[1]  user key ("telegram:123")
-- ARGV[2]  dedupe TTL in seconds
-- ARGV[3]  default emission interval in ms (period / count)
-- ARGV[4]  default burst (messages allowed at once)
-- ARGV[5]  flags: "a" when the user is an admin (not held by maintenance or bans),
--          "c" to look up the cache
-- Returns one string "outcome:value": duplicate | banned:reason | banned_silent
--   | maintenance:message | limited:retry_after_ms | hit:cached_json | miss | pass

local user = ARGV[1]
local flags = ARGV[5]

local function done(outcome, value)
  redis.call('HINCRBY', KEYS[5], outcome, 1)
  redis.call('EXPIRE', KEYS[5], 7200)
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
  if cached then
    return done('hit', cached)
  end
  return done('miss')
end
return done('pass')
