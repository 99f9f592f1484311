--[[
  A socket went away: disconnected, or reaped with its dead pod.
  KEYS[1] presence hash of (namespace, user)
  KEYS[2] presence view of (namespace, user) (see presence-connect-2.lua)
  ARGV[1] socket id
  ARGV[2] pod name: the socket is removed only while recorded on that pod (a socket recovered
          meanwhile on another pod stays)
  ARGV[3] now (ms): becomes lastSeen when this was the user's last socket
  ARGV[4] offline deadline (ms): when the last socket went, offline is pending until then
  Returns { 1 when the last socket went and offline is now pending, else 0 }
  The caller has already put the user on the due set, so the offline decision survives this pod.
]]
local at = redis.call('HGET', KEYS[1], 's:' .. ARGV[1])
if at ~= ARGV[2] then return { 0 } end
redis.call('HDEL', KEYS[1], 's:' .. ARGV[1])
local fields = redis.call('HKEYS', KEYS[1])
for _, f in ipairs(fields) do
  if string.sub(f, 1, 2) == 's:' then return { 0 } end
end
-- still online until the offline is decided; only lastSeen moves
local view = redis.call('GET', KEYS[2]) or 'online:'
redis.call('SET', KEYS[2], string.sub(view, 1, string.find(view, ':', 1, true)) .. ARGV[3])
redis.call('HSET', KEYS[1], 'pending', ARGV[4])
return { 1 }
