-- gate.lua — decide what happens to one incoming message in ONE Redis round trip.
--
-- Separate calls would cost six or seven round trips per message (dedupe, ban, maintenance,
-- limit override, rate state read and write, cache) and could interleave with other bot
-- processes; one script is one round trip and atomic. Admin state lives in one hash so a
-- single HMGET reads all of it.
--
-- KEYS[1]  this request id's marker: "h" while it is being handled (a lease, PX), "d" once
--          its reply went out (set by the caller's next round trip): a redelivered update is dropped when
--          done, and waits while another process holds the lease
-- KEYS[2]  admin hash: "maintenance" -> message, "ban:<user>" -> reason,
--          "noticed:<user>" -> 1 (a banned user is told once, then silence),
--          "limit:<user>" / "limit:*" -> "interval_ms:burst" (per-user / default override)
-- KEYS[3]  this user's rate state: the GCRA theoretical arrival time in ms, with an expiry
-- KEYS[4]  cache key of the lookup (read only when ARGV[5] says so)
-- KEYS[5]  this minute's stats hash (outcome -> count), kept two hours for /stats
-- KEYS[6]  in-flight marker of this lookup (coalescing: one upstream call per lookup)
-- KEYS[7]  requests waiting for the in-flight lookup (a list of request JSON)
-- KEYS[8]  the upstream's circuit breaker hash (open_until in ms)
-- KEYS[9]  set while a limited user has been told when to retry (expires when they may)
-- KEYS[10] this user's settings hash: its "lang" (their /lang choice) comes back with
--          the outcome, so the answer is rendered in their language
-- KEYS[11…] the platform's outbound buckets for this chat (per bot, chat, group): a reply
--          the bot process sends itself is charged here like a worker's (all or none)
-- KEYS[…]  after the buckets: earlier requests' markers to set "d" (their replies went out
--          since this process' last round trip: the done-marks ride on this one)
-- ARGV[1]  user key ("telegram:123")
-- ARGV[2]  the handling lease in ms
-- ARGV[3]  default emission interval in ms (period / count)
-- ARGV[4]  default burst (messages allowed at once)
-- ARGV[5]  flags: "a" when the user is an admin (not held by maintenance or bans),
--          "c" to look up the cache (and check the breaker),
--          "k" to coalesce identical in-flight lookups,
--          "r" for a Refresh press (see ARGV[9]; "miss" then carries the entry),
--          "p" with it for a "More" press (the cached answer is shown whatever its age)
-- ARGV[6]  the request as JSON (kept in the waiters list when the lookup is in flight)
-- ARGV[7]  in-flight marker TTL in seconds
-- ARGV[8]  how long a request id is remembered once done, in seconds
-- ARGV[9]  with flag "r" (a Refresh button pressed): the cached answer is shown as it is while
--          younger than this many ms; older, the lookup runs again (the entry's params)
-- ARGV[10…] per outbound bucket: its emission interval in ms, then its burst
-- Cache values are "<fresh_until_ms>:<json>": past fresh_until an entry is stale but may be
-- served (stale-while-revalidate, stale-if-error) until the key itself expires.
-- Returns one string "outcome[marks][=lang]:value": duplicate | handling (another process has the lease)
--   | banned:reason | banned_silent
--   | limited:retry_after_ms | limited_silent:retry_after_ms (told already this window)
--   | maintenance:message | hit:json | stale:json (a refresh runs)
--   | stale_refresh:json (the caller starts the refresh) | stale_open:json (breaker open)
--   | open:retry_ms | miss (the caller queues the lookup) | coalesced (queued behind it)
--   | expired (a Refresh press whose answer is no longer cached)
--   | pass (the caller answers: a local or admin command, a usage error)
-- An outcome the bot process answers at once is followed by "!" when the outbound budget
-- has no room for that answer now (the caller hands it to a worker, which waits), and by "?"
-- when an admin's limit override could not be used (the defaults applied instead); then
-- "=de" when the user chose a language with /lang.

local user = ARGV[1]
local flags = ARGV[5]
local last_bucket = 10 + (#ARGV - 9) / 2
for i = last_bucket + 1, #KEYS do
  redis.call('SET', KEYS[i], 'd', 'EX', ARGV[8])
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000  -- ms, to the microsecond
local mark = ''
local MAX_INTERVAL, MAX_BURST = 86400000, 10000  -- what /limit accepts: a day, 10,000
local FLOOD_PENALTY_MS = 60000

local function count(outcome)
  -- The first count of an outcome in a minute sets the hash's expiry; later ones need not.
  if redis.call('HINCRBY', KEYS[5], outcome, 1) == 1 then
    redis.call('EXPIRE', KEYS[5], 7200)
  end
end

local lang = ''
local function done(outcome, value)
  count(outcome)
  return outcome .. mark .. lang .. ':' .. (value or '')
end

-- GCRA (generic cell rate algorithm): a key holds the theoretical arrival time; `burst`
-- events may arrive at once, then one per `interval`. Returns the new TAT and how long
-- until an event would be allowed (0: now).
local function gcra(key, interval, burst)
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then
    tat = now
  end
  local new_tat = tat + interval
  return new_tat, math.max(0, new_tat - burst * interval - now)
end

-- The TAT keeps its fraction of a millisecond (30/s is 33.333 ms apart; an interval under
-- a millisecond is a rate over 1,000/s), and the key lives at least a whole millisecond:
-- PX 0 is an error ("invalid expire time").
local function charge(key, new_tat)
  redis.call('SET', key, string.format('%.3f', new_tat), 'PX', math.max(1, math.ceil(new_tat - now)))
end

-- An answer the bot process sends itself: charge the outbound buckets, or mark it "!" (a
-- worker sends it when there is room).
local function answer(outcome, value)
  local tats = {}
  for i = 11, last_bucket do
    local new_tat, wait = gcra(KEYS[i], tonumber(ARGV[2 * i - 12]), tonumber(ARGV[2 * i - 11]))
    if wait > 0 then
      mark = mark .. '!'
      return done(outcome, value)
    end
    tats[i] = new_tat
  end
  for i = 11, last_bucket do
    charge(KEYS[i], tats[i])
  end
  return done(outcome, value)
end

if not redis.call('SET', KEYS[1], 'h', 'NX', 'PX', ARGV[2]) then
  if redis.call('GET', KEYS[1]) == 'h' then
    return done('handling')
  end
  return done('duplicate')
end

local chosen = redis.call('HGET', KEYS[10], 'lang')
if chosen then
  lang = '=' .. chosen
end

local admin = redis.call('HMGET', KEYS[2], 'maintenance', 'ban:' .. user, 'limit:' .. user, 'limit:*')
local is_admin = string.find(flags, 'a', 1, true)

if not is_admin and admin[2] then
  if redis.call('HSETNX', KEYS[2], 'noticed:' .. user, '1') == 1 then
    return answer('banned', admin[2])
  end
  return done('banned_silent')
end

-- The rate limit comes before the maintenance notice, so a flood is never answered in full.
local interval = tonumber(ARGV[3])
local burst = tonumber(ARGV[4])
local override = admin[3] or admin[4]
if override then
  local i, b = string.match(override, '^(%d+):(%d+)$')
  i, b = tonumber(i), tonumber(b)
  if i and b and i >= 1 and i <= MAX_INTERVAL and b >= 1 and b <= MAX_BURST then
    interval, burst = i, b
  else
    mark = '?'  -- an override no admin command writes: ignored (and logged), never fatal
  end
end
local new_tat, wait = gcra(KEYS[3], interval, burst)
if wait > 0 then
  -- A message sent while limited still moves the window on, up to FLOOD_PENALTY_MS: whoever
  -- keeps flooding stays limited (and costs nothing) until they stop, so flooders cannot
  -- spend the bot's outbound budget that other users need.
  local penalised = math.min(new_tat, now + FLOOD_PENALTY_MS + burst * interval)
  if penalised > new_tat - interval then
    charge(KEYS[3], penalised)
  end
  local ms = string.format('%d', math.max(1, math.ceil(wait)))
  -- Told once, until the window frees; every other message of a flood costs no reply.
  if redis.call('SET', KEYS[9], '1', 'NX', 'PX', ms) then
    return answer('limited', ms)
  end
  return done('limited_silent', ms)
end
charge(KEYS[3], new_tat)

if not is_admin and admin[1] then
  return answer('maintenance', admin[1])
end

if string.find(flags, 'c', 1, true) then
  local cached = redis.call('GET', KEYS[4])
  local refresh = string.find(flags, 'r', 1, true)
  local body
  if cached then
    local sep = string.find(cached, ':', 1, true)
    local fresh_until = tonumber(string.sub(cached, 1, sep - 1)) or 0
    body = string.sub(cached, sep + 1)
    local young = now < fresh_until
    if refresh and string.find(flags, 'p', 1, true) then
      young = true  -- pressed More: another page of this answer
    elseif refresh then  -- pressed Refresh: shown as it is only while younger than the floor
      young = now - (tonumber(cjson.decode(body).at) or 0) * 1000 < tonumber(ARGV[9])
    end
    if young then
      return answer('hit', body)  -- fresh: the breaker does not matter (one call fewer)
    end
  elseif refresh then
    return answer('expired')  -- nothing says what to look up any more
  end
  local open_until = tonumber(redis.call('HGET', KEYS[8], 'open_until') or 0)
  local breaker_open = now < open_until
  if cached and breaker_open then
    return answer('stale_open', body)
  end
  if cached and not refresh then
    if redis.call('SET', KEYS[6], '1', 'NX', 'EX', ARGV[7]) then
      return answer('stale_refresh', body)
    end
    return answer('stale', body)
  end
  if breaker_open then
    return answer('open', string.format('%d', math.ceil(open_until - now)))
  end
  if not string.find(flags, 'k', 1, true) or redis.call('SET', KEYS[6], '1', 'NX', 'EX', ARGV[7]) then
    return done('miss', refresh and body or nil)
  end
  redis.call('RPUSH', KEYS[7], ARGV[6])
  redis.call('EXPIRE', KEYS[7], ARGV[7])
  return done('coalesced')
end
return answer('pass')
