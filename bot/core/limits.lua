-- limits.lua — GCRA buckets shared by every process: outbound platform limits and upstream
-- quotas. All buckets must have room, or none is charged: the caller learns how long to wait.
-- Keys of one call share a {hash tag} (bot/core/keys.py) so the script also runs on Redis Cluster.
--
-- KEYS[i]        a bucket: its GCRA theoretical arrival time in ms, with an expiry
-- ARGV[2i-1]     that bucket's emission interval in ms
-- ARGV[2i]       that bucket's burst
-- Returns 0 when the send may go now (every bucket charged), else the wait in ms.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000  -- ms, to the microsecond
local wait = 0
local tats = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then
    tat = now
  end
  local new_tat = tat + interval
  local allow_at = new_tat - burst * interval
  if allow_at - now > wait then
    wait = allow_at - now
  end
  tats[i] = new_tat
end
if wait > 0 then
  return math.max(1, math.ceil(wait))  -- an integer reply: 0.4 ms would read as 0, "charged"
end
for i, key in ipairs(KEYS) do
  -- The fraction of a millisecond kept, and never PX 0 (an error): as in gate.lua's charge.
  redis.call('SET', key, string.format('%.3f', tats[i]), 'PX', math.max(1, math.ceil(tats[i] - now)))
end
return 0
