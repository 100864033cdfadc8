-- deliver_once.lua — push a reply onto a waiting process's list at most once per request.
-- A redelivered deliver task (worker killed after the push, before the ack) finds the
-- marker and does nothing, so the user sees exactly one answer.
--
-- KEYS[1]  delivered marker for the request id
-- KEYS[2]  the reply list the receiving process pops from
-- ARGV[1]  marker TTL in seconds
-- ARGV[2]  the reply payload (JSON)
-- ARGV[3]  reply list TTL in seconds (a list nobody reads any more expires)
-- Returns 1 when pushed, 0 when it had been delivered before.

if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return 0
end
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 1
