--[[
  A socket of a user connected (or was recovered) on a pod.
  KEYS[1] presence hash of (namespace, user): "s:<sid>" -> pod, pending, v, unannounced
  KEYS[2] presence view of (namespace, user): "<online|offline>:<lastSeen ms>", what lookups read
          (one string per user, so that a bulk lookup is one MGET); same hash tag as KEYS[1]
  ARGV[1] socket id
  ARGV[2] pod name
  ARGV[3] now (ms)
  Returns { transition (1 = became online, 0 = none), version, lastSeen }
  A reconnect within the grace period (status still online, offline pending) cancels the
  pending offline and announces nothing.
]]
redis.call('HSET', KEYS[1], 's:' .. ARGV[1], ARGV[2])
local view = redis.call('GET', KEYS[2])
if view and string.sub(view, 1, 7) == 'online:' then
  redis.call('HDEL', KEYS[1], 'pending')
  return { 0, tonumber(redis.call('HGET', KEYS[1], 'v') or '0'), string.sub(view, 8) }
end
local v = redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('SET', KEYS[2], 'online:' .. ARGV[3])
-- an offline decided but not announced yet is moot now: the announce script skips it anyway
redis.call('HDEL', KEYS[1], 'pending', 'unannounced')
return { 1, v, ARGV[3] }
