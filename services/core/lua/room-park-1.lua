--[[
  A socket's connection dropped and it may come back (recovered, with the same id, on any pod)
  within the grace period: its membership stays, marked parked, so that the room sees neither a
  user-left nor a user-joined for the blip. A re-join (the recovery) unparks it; otherwise a
  sweeper removes it once the grace period is over (room-reap-2.lua, parked only).
  KEYS[1] room sockets hash (socket id -> "userId\npod"; "~parked:<sid>" while parked)
  ARGV[1] socket id
  ARGV[2] pod name: only a membership recorded on that pod is parked
  Returns 1 when parked, 0 when the socket is not a member there.
]]
local prev = redis.call('HGET', KEYS[1], ARGV[1])
if not prev or string.sub(prev, string.find(prev, '\n', 1, true) + 1) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], '~parked:' .. ARGV[1], '1')
return 1
