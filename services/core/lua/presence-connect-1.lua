--[[
  A socket of a user connected (or was recovered) on a pod.
  KEYS[1] presence hash of (namespace, user): "s:<sid>" -> pod, status, lastSeen, pending, v
  ARGV[1] socket id
  ARGV[2] pod name
  ARGV[3] now (ms)
  Returns { transition (1 = became online, 0 = none), version, lastSeen }
  A reconnect within the grace period (status still online, offline pending) cancels the
  pending offline and announces nothing.
]]
redis.call('HSET', KEYS[1], 's:' .. ARGV[1], ARGV[2])
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'online' then
  redis.call('HDEL', KEYS[1], 'pending')
  return { 0, tonumber(redis.call('HGET', KEYS[1], 'v') or '0'), redis.call('HGET', KEYS[1], 'lastSeen') or ARGV[3] }
end
local v = redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('HSET', KEYS[1], 'status', 'online', 'lastSeen', ARGV[3])
-- an offline decided but not announced yet is moot now: the announce script skips it anyway
redis.call('HDEL', KEYS[1], 'pending', 'unannounced')
return { 1, v, ARGV[3] }
