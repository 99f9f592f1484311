--[[
  A socket leaves a room (explicitly, by disconnect, or reaped with its dead pod).
  KEYS[1] room sockets hash (socket id -> "userId\npod")
  KEYS[2] room users hash   (userId -> number of the user's sockets in the room)
  ARGV[1] socket id
  ARGV[2] pod name: the socket is removed only while recorded on that pod, so a socket
          recovered meanwhile on another pod is left alone
  Returns { last (1 when the user's last socket left), distinct users left, user id or false }
]]
local prev = redis.call('HGET', KEYS[1], ARGV[1])
if not prev then return { 0, redis.call('HLEN', KEYS[2]), false } end
local sep = string.find(prev, '\n', 1, true)
local uid = string.sub(prev, 1, sep - 1)
local pod = string.sub(prev, sep + 1)
if pod ~= ARGV[2] then return { 0, redis.call('HLEN', KEYS[2]), false } end
redis.call('HDEL', KEYS[1], ARGV[1])
local last = 0
if redis.call('HINCRBY', KEYS[2], uid, -1) <= 0 then
  redis.call('HDEL', KEYS[2], uid)
  last = 1
end
return { last, redis.call('HLEN', KEYS[2]), uid }
