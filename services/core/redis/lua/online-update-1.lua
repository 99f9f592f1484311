--[[
  Keeps the count of online users of a namespace in step with presence transitions, which may
  arrive out of order from different pods: a transition older than the recorded one is ignored.
  KEYS[1] online hash of a namespace: userId -> "<version>:<1|0>", "#count" -> online users
  ARGV[1] user id
  ARGV[2] transition version (from the presence scripts)
  ARGV[3] "1" online, "0" offline
  Returns the number of online users.
]]
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local curV, curS = 0, '0'
if cur then
  local sep = string.find(cur, ':', 1, true)
  curV = tonumber(string.sub(cur, 1, sep - 1))
  curS = string.sub(cur, sep + 1)
end
if tonumber(ARGV[2]) <= curV then return tonumber(redis.call('HGET', KEYS[1], '#count') or '0') end
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ':1')
  if curS ~= '1' then return redis.call('HINCRBY', KEYS[1], '#count', 1) end
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ':0')
  if curS == '1' then return redis.call('HINCRBY', KEYS[1], '#count', -1) end
end
return tonumber(redis.call('HGET', KEYS[1], '#count') or '0')
