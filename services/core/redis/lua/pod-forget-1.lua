--[[
  Removes a reaped pod's entry once its memberships are gone, unless it came back meanwhile.
  KEYS[1] pods hash: pod -> JSON
  ARGV[1] pod name
  Returns 1 when removed.
]]
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v and string.find(v, '"reaped":true', 1, true) then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0
