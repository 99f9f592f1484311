--[[
  A socket joins a room; tells whether it is the user's first socket in the room.
  KEYS[1] room sockets hash (socket id -> "userId\npod")
  KEYS[2] room users hash   (userId -> number of the user's sockets in the room)
  ARGV[1] socket id
  ARGV[2] user id
  ARGV[3] pod name
  Returns { first (1 when this is the user's first socket in the room), distinct users in the room }
  Re-joining with the same socket id (a recovered socket, on this pod or another) only updates the
  pod, and unparks the membership (room-park-1.lua): the socket is back, nothing is announced.
]]
local prev = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '\n' .. ARGV[3])
redis.call('HDEL', KEYS[1], '~parked:' .. ARGV[1])
local first = 0
if not prev then
  if redis.call('HINCRBY', KEYS[2], ARGV[2], 1) == 1 then first = 1 end
end
return { first, redis.call('HLEN', KEYS[2]) }
